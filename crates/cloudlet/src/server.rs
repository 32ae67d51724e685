//! The HTTP API: Sinfonia's tier-1 and tier-2 endpoints in one server.
//!
//! Under `/api/v1`:
//!
//! | method | path                               | answer                                   |
//! |--------|------------------------------------|------------------------------------------|
//! | POST   | `/deploy/{uuid}/{application_key}` | 200, `[deployment]` (started or found)   |
//! | GET    | `/deploy/{uuid}/{application_key}` | 200, `deployment`; 404 if none           |
//! | DELETE | `/deploy/{uuid}/{application_key}` | 204 (released); 404 if none              |
//! | GET    | `/recipe/{uuid}/`                  | 200, the recipe; 403 restricted; 404     |
//! | GET    | `/cloudlets/`                      | 200, `[cloudlet info]`, this one first   |
//! | POST   | `/cloudlets/`                      | 204, a tier 2's report recorded          |
//! | DELETE | `/cloudlets/{uuid}`                | 204, a tier 2 gone (ours); 404 unknown   |
//!
//! A deploy is placed among this cloudlet and those that report to it
//! ([`crate::federation`]): served here, or forwarded to a better one.
//! And at the root: `GET /metrics` (Prometheus, [`crate::metrics`]) and
//! `GET /healthz` (200 `ok` while the process serves).
//!
//! `uuid` may be `helloworld` (the nil UUID); the key is URL-safe or
//! standard base64 (a standard key's `/` may be left unescaped: the key is
//! the rest of the path, as Sinfonia's `format: path`). Every error is an
//! `application/problem+json` body with `title` and `detail`
//! ([`crate::problems`]): 400 bad UUID, key or report, 403 restricted
//! recipe, 404 no recipe / no deployment / no such endpoint, 405, 413, 414,
//! 422 a recipe whose VM cannot run here (checked before any pull), 500
//! unreadable recipe or backend failure, 503 at capacity.
//!
//! Tier-2 reports are validated (an `http(s)` deploy URL ending in
//! `/vN/deploy`, bounded lists), forgotten after [`REPORT_LIFETIME`] without
//! a new one, and capped at [`MAX_REPORTS`]: a new cloudlet beyond the cap
//! is refused with 503 rather than pushing out one that reports
//! ([`crate::federation::registry`]).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use axum::Router;
use axum::body::Body;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, RawQuery, State};
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::http::{Extensions, HeaderMap};
use axum::response::{IntoResponse, Json, Response};
use axum::routing::{delete, get};
use sinfonia::deployment::{Deployment as DeploymentAnswer, TunnelConfig};
use sinfonia::keys::encode_key;
use tokio::net::TcpListener;
use uuid::Uuid;

use crate::access_log::log_request;
use crate::api::{CloudletInfo, RecipeInfo, rfc3339};
use crate::backend::{Backend, BackendError};
use crate::config::{CloudletConfig, ConfigError};
use crate::federation::client::{ClientInfo, results};
use crate::federation::dispatch::{DeployRequest, LocalCandidate, dispatch};
use crate::federation::forward::FORWARDED_HEADER;
use crate::federation::placement::Profile;
use crate::federation::routes::{delete_report, post_report};
use crate::federation::{Federation, FederationError};
use crate::listener::{ClientAddr, GuardedListener};
use crate::metrics::{CONTENT_TYPE as METRICS_CONTENT_TYPE, Metrics, Outcome};
use crate::problems::{ApiError, echo, ensure_problem, limit_uri, no_route};
use crate::rate_limit::RateLimiter;
use crate::recipes::RecipeLoadError;
use crate::recipes::RecipeStore;
use crate::spec::{VmSettings, parse_application_key, parse_backend_uuid};
use crate::state::{Deployment, Registry};

pub use crate::federation::registry::{MAX_REPORTS, REPORT_LIFETIME};
pub use crate::federation::report::BODY_TIMEOUT;
pub use crate::problems::MAX_BODY;

/// Why the cloudlet cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The settings are invalid.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The recipe directory is unusable.
    #[error("the recipe directory {} is unusable: {reason}", path.display())]
    Recipes {
        /// The directory.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Cleaning up after a previous run failed.
    #[error("cannot clean up after the previous run: {0}")]
    Cleanup(BackendError),
    /// The listening socket.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: io::Error,
    },
    /// The server failed.
    #[error("the API server failed: {0}")]
    Serve(io::Error),
    /// Tier 1 cannot start: its HTTP client, its GeoIP database.
    #[error(transparent)]
    Federation(#[from] FederationError),
}

struct App<B: Backend> {
    config: CloudletConfig,
    recipes: RecipeStore,
    registry: Registry<B>,
    local_addr: SocketAddr,
    federation: Federation,
    metrics: Metrics,
    rate_limiter: RateLimiter,
}

impl<B: Backend> App<B> {
    fn deployment_info(&self, deployment: &Deployment) -> DeploymentAnswer {
        DeploymentAnswer {
            name: Some(deployment.name.clone()),
            uuid: deployment.uuid,
            application_key: encode_key(&deployment.key),
            status: deployment.status,
            created: Some(rfc3339(deployment.created)),
            tunnel_config: TunnelConfig {
                public_key: encode_key(&self.config.tunnel_public_key),
                allowed_ips: self.config.allowed_ips.clone(),
                endpoint: self.config.public_endpoint.clone(),
                address: vec![deployment.address.to_string()],
                dns: self.config.dns(&deployment.name),
            },
            disk: self.registry.disk_progress(deployment.uuid, deployment.key),
        }
    }

    fn own_info(&self) -> CloudletInfo {
        let base = match &self.config.api_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", self.local_addr),
        };
        let active = self.registry.active() as f64;
        let max = self.config.max_vms as f64;
        CloudletInfo {
            uuid: Some(self.config.uuid),
            name: self.config.name.clone(),
            endpoint: format!("{base}/api/v1/deploy"),
            resources: [
                ("vms".to_owned(), active),
                ("max_vms".to_owned(), max),
                ("load".to_owned(), active / max.max(1.0)),
            ]
            .into_iter()
            .collect(),
            locations: self.config.locations.clone(),
            local_networks: self.config.local_networks.clone(),
            accepted_clients: self.config.accepted_clients.clone(),
            rejected_clients: self.config.rejected_clients.clone(),
            last_update: Some(rfc3339(SystemTime::now())),
        }
    }
}

type AppState<B> = State<Arc<App<B>>>;

fn parse_target(uuid: &str, key: &str) -> Result<(Uuid, [u8; 32]), ApiError> {
    let uuid = parse_backend_uuid(uuid).map_err(|_| ApiError::BadUuid { value: echo(uuid) })?;
    let key = parse_application_key(key).map_err(ApiError::BadKey)?;
    Ok((uuid, key))
}

async fn load_recipe<B: Backend>(
    app: &App<B>,
    uuid: Uuid,
) -> Result<Arc<sinfonia::Recipe>, ApiError> {
    app.recipes.load(uuid).await.map_err(ApiError::Recipe)
}

async fn deploy_post<B: Backend>(
    State(app): AppState<B>,
    Path((uuid, key)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Response, ApiError> {
    // Without connection info (the router embedded elsewhere), no limit.
    let client = connection(&extensions);
    if let Some(client) = client
        && let limited = app.federation.limited_address(client, &headers)
        && let Err(wait) = app.rate_limiter.check(limited, std::time::Instant::now())
    {
        app.metrics.deploy_request(Outcome::RateLimited);
        return Err(ApiError::RateLimited(wait));
    }
    let asked = Asked {
        uuid: &uuid,
        key: &key,
        query: query.as_deref(),
        headers: &headers,
        connection: client,
    };
    let result = deploy(&app, asked).await;
    app.metrics.deploy_request(outcome(&result));
    result
}

/// The client's address, from the connection.
fn connection(extensions: &Extensions) -> Option<std::net::IpAddr> {
    extensions
        .get::<ConnectInfo<ClientAddr>>()
        .map(|ConnectInfo(ClientAddr(address))| address.ip())
}

/// The `outcome` label of a deploy request.
fn outcome(result: &Result<Response, ApiError>) -> Outcome {
    match result {
        Ok(_) => Outcome::Deployed,
        Err(ApiError::BadUuid { .. } | ApiError::BadKey(_) | ApiError::BadHeader(_)) => {
            Outcome::BadRequest
        }
        Err(ApiError::Recipe(RecipeLoadError::NotFound { .. })) => Outcome::UnknownRecipe,
        Err(ApiError::Recipe(_) | ApiError::Values { .. }) => Outcome::InvalidRecipe,
        Err(ApiError::RateLimited(_)) => Outcome::RateLimited,
        Err(error) if error.status() == StatusCode::SERVICE_UNAVAILABLE => Outcome::AtCapacity,
        Err(_) => Outcome::Failed,
    }
}

/// A deploy request as it came.
struct Asked<'a> {
    uuid: &'a str,
    key: &'a str,
    query: Option<&'a str>,
    headers: &'a HeaderMap,
    connection: Option<std::net::IpAddr>,
}

/// Places the deployment here or on a cloudlet that reports to us; a
/// request our own tier 1 forwarded is served here.
async fn deploy<B: Backend>(app: &App<B>, asked: Asked<'_>) -> Result<Response, ApiError> {
    let (uuid, key) = parse_target(asked.uuid, asked.key)?;
    let client = ClientInfo::from_request(asked.headers, asked.connection)?;
    let results = results(asked.query)?;
    let recipe = load_recipe(app, uuid).await?;
    let settings =
        VmSettings::from_recipe(&recipe).map_err(|source| ApiError::Values { uuid, source })?;
    let here = || deploy_here(app, uuid, key, settings);
    if asked.headers.contains_key(FORWARDED_HEADER) {
        return Ok(Json(vec![here().await?]).into_response());
    }
    let request = DeployRequest {
        uuid,
        key,
        client,
        results,
    };
    let local = LocalCandidate {
        uuid: app.config.uuid,
        profile: Profile::of(&app.own_info()),
        deploy: here,
    };
    let answers = dispatch(&app.federation, &request, Some(local)).await?;
    Ok(Json(answers).into_response())
}

/// Deploys on this cloudlet.
async fn deploy_here<B: Backend>(
    app: &App<B>,
    uuid: Uuid,
    key: [u8; 32],
    settings: VmSettings,
) -> Result<DeploymentAnswer, ApiError> {
    let deployment = app
        .registry
        .deploy(uuid, key, settings)
        .await
        .map_err(ApiError::Deploy)?;
    Ok(app.deployment_info(&deployment))
}

async fn deploy_get<B: Backend>(
    State(app): AppState<B>,
    Path((uuid, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (uuid, key) = parse_target(&uuid, &key)?;
    let deployment = app
        .registry
        .get(uuid, key)
        .ok_or(ApiError::NoDeployment { uuid })?;
    Ok(Json(app.deployment_info(&deployment)).into_response())
}

async fn deploy_delete<B: Backend>(
    State(app): AppState<B>,
    Path((uuid, key)): Path<(String, String)>,
) -> Result<Response, ApiError> {
    let (uuid, key) = parse_target(&uuid, &key)?;
    app.registry
        .release(uuid, key)
        .await
        .map_err(|_| ApiError::NoDeployment { uuid })?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

async fn recipe_get<B: Backend>(
    State(app): AppState<B>,
    Path(uuid): Path<String>,
) -> Result<Response, ApiError> {
    let uuid = parse_backend_uuid(&uuid).map_err(|_| ApiError::BadUuid { value: echo(&uuid) })?;
    let recipe = load_recipe(&app, uuid).await?;
    if recipe.restricted {
        return Err(ApiError::Restricted { uuid });
    }
    Ok(Json(RecipeInfo::from(recipe.as_ref())).into_response())
}

async fn cloudlets_get<B: Backend>(State(app): AppState<B>) -> Response {
    let own = app.own_info();
    let mut list = vec![own];
    let reports = app.federation.registry.list(Instant::now());
    list.extend(
        reports
            .into_iter()
            .filter(|report| report.uuid != Some(app.config.uuid)),
    );
    Json(list).into_response()
}

async fn cloudlets_post<B: Backend>(
    State(app): AppState<B>,
    headers: HeaderMap,
    extensions: Extensions,
    body: Body,
) -> Result<Response, ApiError> {
    post_report(&app.federation, &headers, connection(&extensions), body).await
}

async fn cloudlets_delete<B: Backend>(
    State(app): AppState<B>,
    Path(uuid): Path<String>,
    headers: HeaderMap,
    extensions: Extensions,
) -> Result<Response, ApiError> {
    delete_report(&app.federation, &headers, connection(&extensions), &uuid)
}

/// `GET /metrics`: [`crate::metrics`], the backend read off the async
/// threads.
async fn metrics_get<B: Backend>(State(app): AppState<B>) -> Response {
    let backend = Arc::clone(app.registry.backend());
    let stats = tokio::task::spawn_blocking(move || backend.stats())
        .await
        .unwrap_or_default();
    let reported = app.federation.registry.list(std::time::Instant::now());
    app.federation
        .metrics
        .set_reported_cloudlets(reported.len());
    let text = app.metrics.render(app.registry.running(), &stats);
    ([(CONTENT_TYPE, METRICS_CONTENT_TYPE)], text).into_response()
}

/// `GET /healthz`: the process serves requests.
async fn healthz() -> &'static str {
    "ok\n"
}

fn router<B: Backend>(app: Arc<App<B>>) -> Router {
    let deploy = get(deploy_get::<B>)
        .post(deploy_post::<B>)
        .delete(deploy_delete::<B>);
    let cloudlets = get(cloudlets_get::<B>).post(cloudlets_post::<B>);
    let api = Router::new()
        .route("/deploy/{uuid}/{*application_key}", deploy)
        .route("/recipe/{uuid}/", get(recipe_get::<B>))
        .route("/recipe/{uuid}", get(recipe_get::<B>))
        .route("/cloudlets/", cloudlets.clone())
        .route("/cloudlets", cloudlets)
        .route("/cloudlets/{uuid}", delete(cloudlets_delete::<B>));
    let router = Router::new()
        .nest("/api/v1", api)
        .route("/metrics", get(metrics_get::<B>));
    with_common_layers(router).with_state(app)
}

/// What every server of this crate puts around its routes (the cloudlet's
/// and `olive2022 tier1`'s): problem+json for unknown routes, the URI
/// bound, problem+json bodies for every error, the access log and the body
/// bound.
pub(crate) fn with_common_layers<S: Clone + Send + Sync + 'static>(router: Router<S>) -> Router<S> {
    router
        .route("/healthz", get(healthz))
        .fallback(no_route)
        .layer(axum::middleware::from_fn(limit_uri))
        .layer(axum::middleware::map_response(ensure_problem))
        .layer(axum::middleware::from_fn(log_request))
        .layer(DefaultBodyLimit::max(MAX_BODY))
}

/// A cloudlet bound to its address, ready to serve.
pub struct Cloudlet<B: Backend> {
    listener: TcpListener,
    app: Arc<App<B>>,
}

impl<B: Backend> Cloudlet<B> {
    /// Checks the settings and the recipe directory, lets the backend clean
    /// up after a previous run, and binds the API's socket.
    pub async fn bind(config: CloudletConfig, backend: B) -> Result<Cloudlet<B>, ServeError> {
        config.validate()?;
        let recipes = RecipeStore::new(&config.recipes_dir);
        match std::fs::metadata(recipes.dir()) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(ServeError::Recipes {
                    path: recipes.dir().to_owned(),
                    reason: "not a directory".into(),
                });
            }
            Err(e) => {
                return Err(ServeError::Recipes {
                    path: recipes.dir().to_owned(),
                    reason: e.to_string(),
                });
            }
        }
        let backend = Arc::new(backend);
        let cleaner = Arc::clone(&backend);
        tokio::task::spawn_blocking(move || cleaner.cleanup())
            .await
            .map_err(|e| ServeError::Cleanup(BackendError::failed(e.to_string())))?
            .map_err(ServeError::Cleanup)?;
        let listener =
            TcpListener::bind(config.listen)
                .await
                .map_err(|source| ServeError::Bind {
                    addr: config.listen,
                    source,
                })?;
        let local_addr = listener.local_addr().map_err(|source| ServeError::Bind {
            addr: config.listen,
            source,
        })?;
        let registry = Registry::with_shared_backend(backend, config.limits());
        let federation = Federation::new(config.federation.clone())?;
        let metrics = Metrics::with_federation(&federation.metrics);
        Ok(Cloudlet {
            listener,
            app: Arc::new(App {
                rate_limiter: RateLimiter::new(config.deploy_rate),
                config,
                recipes,
                registry,
                local_addr,
                federation,
                metrics,
            }),
        })
    }

    /// The API's address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.app.local_addr
    }

    /// The deployment registry (for the tunnel to report traffic with
    /// [`Registry::touch`] and to look deployments up by address).
    pub fn registry(&self) -> Registry<B> {
        self.app.registry.clone()
    }

    /// The settings.
    pub fn config(&self) -> &CloudletConfig {
        &self.app.config
    }

    /// The API as an axum router, to embed elsewhere.
    pub fn router(&self) -> Router {
        router(Arc::clone(&self.app))
    }

    /// Serves until `shutdown` completes, expiring idle deployments on the
    /// way; then releases every deployment (peers removed, VMs stopped).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServeError> {
        let registry = self.app.registry.clone();
        let reaper = registry.spawn_reaper(self.app.config.reap_period());
        let router = router(Arc::clone(&self.app));
        let listener = GuardedListener::new(self.listener).map_err(ServeError::Serve)?;
        crate::connections::serve(listener, router, shutdown).await;
        reaper.abort();
        registry.shutdown().await;
        Ok(())
    }
}

/// Runs the cloudlet: [`Cloudlet::bind`] then [`Cloudlet::run`].
pub async fn serve<B: Backend>(
    config: CloudletConfig,
    backend: B,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServeError> {
    Cloudlet::bind(config, backend).await?.run(shutdown).await
}
