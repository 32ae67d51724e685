//! `olive2022 tier1`: tier 1 alone, as Sinfonia's `sinfonia-tier1`.
//!
//! Under `/api/v1`: `POST /deploy/{uuid}/{key}[?results=N]` placed on the
//! reported cloudlets and forwarded ([`crate::federation::dispatch`]);
//! `GET /cloudlets/` lists them; `POST /cloudlets/` and our
//! `DELETE /cloudlets/{uuid}` ([`crate::federation::routes`]); with
//! `--recipes`, `GET /recipe/{uuid}/` and an unknown backend refused with
//! 404 before any forward (without, every UUID is passed on, as tier 2
//! has the recipes). At the root, `GET /healthz` and `GET /metrics`
//! ([`metrics`]). Its options come from flags, variables and a TOML file
//! ([`settings`]). Same socket guard, problem+json errors, access log and
//! deploy rate limit as the cloudlet.

pub mod metrics;
pub mod settings;

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get, post};
use tokio::net::TcpListener;

use crate::api::RecipeInfo;
use crate::federation::client::{ClientInfo, results};
use crate::federation::dispatch::{DeployRequest, LocalCandidate, dispatch};
use crate::federation::routes::{delete_report, post_report};
use crate::federation::{Federation, FederationConfig};
use crate::listener::{ClientAddr, GuardedListener};
use crate::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use crate::problems::{ApiError, echo};
use crate::rate_limit::RateLimiter;
use crate::recipes::RecipeStore;
use crate::server::{ServeError, with_common_layers};
use crate::spec::{parse_application_key, parse_backend_uuid};
use metrics::Tier1Metrics;

/// What tier 1 alone needs.
#[derive(Debug, Clone)]
pub struct Tier1Config {
    /// Where the API listens.
    pub listen: SocketAddr,
    /// The recipes, when this tier 1 should know which backends exist.
    pub recipes_dir: Option<PathBuf>,
    /// Deploy requests a minute per client address; 0 for no limit.
    pub deploy_rate: u32,
    /// The token and forward timeout.
    pub federation: FederationConfig,
}

struct Tier1App {
    federation: Federation,
    recipes: Option<RecipeStore>,
    deploy_limiter: RateLimiter,
    metrics: Tier1Metrics,
}

type Tier1State = State<Arc<Tier1App>>;

/// A tier 1 bound to its address, ready to serve.
pub struct Tier1 {
    listener: TcpListener,
    app: Arc<Tier1App>,
}

impl Tier1 {
    /// Checks the recipe directory (when given) and binds the socket.
    pub async fn bind(config: Tier1Config) -> Result<Tier1, ServeError> {
        let recipes = match &config.recipes_dir {
            Some(dir) if !dir.is_dir() => {
                return Err(ServeError::Recipes {
                    path: dir.clone(),
                    reason: "not a directory".into(),
                });
            }
            Some(dir) => Some(RecipeStore::new(dir)),
            None => None,
        };
        let federation = Federation::new(config.federation)?;
        let bind_error = |source| ServeError::Bind {
            addr: config.listen,
            source,
        };
        let listener = TcpListener::bind(config.listen).await.map_err(bind_error)?;
        let metrics = Tier1Metrics::new(&federation.metrics);
        Ok(Tier1 {
            listener,
            app: Arc::new(Tier1App {
                federation,
                recipes,
                deploy_limiter: RateLimiter::new(config.deploy_rate),
                metrics,
            }),
        })
    }

    /// The bound address (the real port when asked for port 0).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown` completes.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let listener = GuardedListener::new(self.listener).map_err(ServeError::Serve)?;
        crate::connections::serve(listener, router(self.app), shutdown).await;
        Ok(())
    }
}

fn connection(extensions: &Extensions) -> Option<IpAddr> {
    extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(address))| address.ip())
}

async fn deploy_post(
    State(app): Tier1State,
    Path((uuid, key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Response, ApiError> {
    let asked = Asked {
        uuid: &uuid,
        key: &key,
        query: query.as_deref(),
        headers: &headers,
        connection: connection(&extensions),
    };
    let result = deploy(&app, asked).await;
    app.metrics.deploy_request(&result);
    result
}

/// A deploy request as it came.
struct Asked<'a> {
    uuid: &'a str,
    key: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    connection: Option<IpAddr>,
}

/// Limits, checks and places a deploy request.
async fn deploy(app: &Tier1App, asked: Asked<'_>) -> Result<Response, ApiError> {
    if let Some(address) = asked.connection {
        let now = std::time::Instant::now();
        let limited = app.federation.limited_address(address, asked.headers);
        app.deploy_limiter
            .check(limited, now)
            .map_err(ApiError::RateLimited)?;
    }
    let uuid = parse_backend_uuid(asked.uuid).map_err(|_| ApiError::BadUuid {
        value: echo(asked.uuid),
    })?;
    let key = parse_application_key(asked.key).map_err(ApiError::BadKey)?;
    let request = DeployRequest {
        uuid,
        key,
        client: ClientInfo::from_request(asked.headers, asked.connection)?,
        results: results(asked.query)?,
    };
    if let Some(recipes) = &app.recipes {
        recipes.load(uuid).await.map_err(ApiError::Recipe)?;
    }
    type NoLocal = fn() -> std::future::Ready<Result<sinfonia::deployment::Deployment, ApiError>>;
    let answers = dispatch(&app.federation, &request, None::<LocalCandidate<NoLocal>>).await?;
    Ok(Json(answers).into_response())
}

/// `GET /metrics`, with the number of cloudlets reporting now.
async fn metrics_get(State(app): Tier1State) -> Response {
    let reported = app.federation.registry.list(std::time::Instant::now());
    app.federation
        .metrics
        .set_reported_cloudlets(reported.len());
    let content_type = [(CONTENT_TYPE, METRICS_CONTENT_TYPE)];
    (content_type, app.metrics.render()).into_response()
}

async fn recipe_get(
    State(app): Tier1State,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let Some(recipes) = &app.recipes else {
        return Err(ApiError::NoRoute(
            "/api/v1/recipe/ (this tier 1 has no recipes)".into(),
        ));
    };
    let uuid = parse_backend_uuid(&uuid).map_err(|_| ApiError::BadUuid { value: echo(&uuid) })?;
    let recipe = recipes.load(uuid).await.map_err(ApiError::Recipe)?;
    if recipe.restricted {
        return Err(ApiError::Restricted { uuid });
    }
    Ok(Json(RecipeInfo::from(recipe.as_ref())).into_response())
}

async fn cloudlets_get(State(app): Tier1State) -> Response {
    Json(app.federation.registry.list(std::time::Instant::now())).into_response()
}

async fn cloudlets_post(
    State(app): Tier1State,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Result<Response, ApiError> {
    post_report(&app.federation, &headers, connection(&extensions), body).await
}

async fn cloudlets_delete(
    State(app): Tier1State,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Response, ApiError> {
    delete_report(&app.federation, &headers, connection(&extensions), &uuid)
}

fn router(app: Arc<Tier1App>) -> Router {
    let cloudlets = get(cloudlets_get).post(cloudlets_post);
    let api = Router::new()
        .route("/deploy/{uuid}/{*application_key}", post(deploy_post))
        .route("/recipe/{uuid}/", get(recipe_get))
        .route("/recipe/{uuid}", get(recipe_get))
        .route("/cloudlets/", cloudlets.clone())
        .route("/cloudlets", cloudlets)
        .route("/cloudlets/{uuid}", delete(cloudlets_delete));
    let root = Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics_get));
    with_common_layers(root).with_state(app)
}
