//! Bearer tokens: `GET <realm>?service=…&scope=…` with the credentials as
//! Basic auth (or anonymously), or, for an identity token, the OAuth2
//! refresh-token grant `POST <realm>` as Docker sends it.

use std::io::Read;

use reqwest::header;
use reqwest::{Method, StatusCode, Url};

use super::error::error_message;
use super::{Registry, RegistryError};
use crate::reference::is_loopback;

/// The most of a token response that is read.
const TOKEN_BODY_MAX: u64 = 1 << 20;

impl Registry {
    /// `GET realm?service=…&scope=…` (Basic auth with the credentials, if
    /// any), or a `POST` of an identity token → the `token` (or
    /// `access_token`) of the JSON answer.
    pub(super) fn fetch_token(
        &self,
        realm: &str,
        service: Option<&str>,
        scope: &str,
    ) -> Result<String, RegistryError> {
        let mut url = Url::parse(realm)
            .map_err(|_| self.protocol(format!("sent an invalid token realm {realm:?}")))?;
        let plain_ok = self.is_plain_http() || url.host_str().is_some_and(is_loopback);
        match url.scheme() {
            "https" => {}
            "http" if plain_ok => {}
            _ => {
                return Err(self.protocol(format!(
                    "sent a token realm {realm:?} that is not HTTPS; use --insecure-registry to allow it"
                )));
            }
        }
        let realm_url = url.clone();
        {
            let mut query = url.query_pairs_mut();
            if let Some(service) = service {
                query.append_pair("service", service);
            }
            query.append_pair("scope", scope);
        }
        let (request, what) = match self.options.credentials.as_ref() {
            Some(credentials) => match credentials.identity_token() {
                Some(refresh_token) => {
                    self.refresh_token_request(realm_url, service, scope, refresh_token)
                }
                None => (
                    self.client
                        .get(url.clone())
                        .basic_auth(&credentials.username, Some(&credentials.password)),
                    format!("GET {} (token)", url.path()),
                ),
            },
            None => (
                self.client.get(url.clone()),
                format!("GET {} (token)", url.path()),
            ),
        };
        let response = request.send().map_err(|e| self.transport_error(e, &what))?;
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED || status == StatusCode::FORBIDDEN {
            let message = error_message(response);
            return Err(
                self.auth_error(status.as_u16(), format!("token server refused: {message}"))
            );
        }
        if !status.is_success() {
            return Err(self.status_error(&Method::GET, &url, response));
        }
        let mut body = Vec::new();
        response
            .take(TOKEN_BODY_MAX)
            .read_to_end(&mut body)
            .map_err(|e| self.read_error("reading a token", &e))?;
        let json: serde_json::Value = serde_json::from_slice(&body).map_err(|_| {
            self.protocol("token server answered something that is not JSON".into())
        })?;
        ["token", "access_token"]
            .iter()
            .find_map(|key| {
                json.get(key)
                    .and_then(|v| v.as_str())
                    .filter(|t| !t.is_empty())
            })
            .map(str::to_owned)
            .ok_or_else(|| self.protocol("token server answered without a token".into()))
    }
}

impl Registry {
    /// An identity token is an OAuth2 refresh token: it is exchanged at
    /// the realm with a form POST (as Docker does), not sent as Basic auth.
    fn refresh_token_request(
        &self,
        url: Url,
        service: Option<&str>,
        scope: &str,
        refresh_token: &str,
    ) -> (reqwest::blocking::RequestBuilder, String) {
        let mut form = url::form_urlencoded::Serializer::new(String::new());
        form.append_pair("grant_type", "refresh_token")
            .append_pair("refresh_token", refresh_token)
            .append_pair("client_id", "olive2022")
            .append_pair("scope", scope);
        if let Some(service) = service {
            form.append_pair("service", service);
        }
        let what = format!("POST {} (token)", url.path());
        let request = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(form.finish());
        (request, what)
    }
}
