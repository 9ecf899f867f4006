//! The HTTP surface: paths, auth, body limits, and the handlers that tie the other modules
//! together.
//!
//! Paths are `/{v1|v1beta}/models` and `/{v1|v1beta}/models/{model}[:action]`. A path segment
//! like `gemini-2.5-flash:generateContent` cannot be split by axum's router, so one catch-all
//! route takes the rest of the path and [`split_action`] cuts it at the last `:`. The
//! `batches`, `files`, `upload` and `download` paths are routed here to their own handlers
//! (`batch_api`, `files_api`); `:batchGenerateContent`, a model action, goes there too.
//!
//! Order of checks, as on the real API: API key (403/400), model (404), body (400), quota
//! (429), then injected faults and the answer. `countTokens` and `models.*` are never rate
//! limited. A Flex request (`serviceTier: "flex"`) waits `Settings::flex.latency` longer
//! before its answer starts, and may be shed with a 429 after that wait.

use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, Request, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use rand::SeedableRng;
use rand::rngs::SmallRng;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::catalog::{self, ModelInfo};
use crate::errors::{ApiError, QuotaKind};
use crate::faults::{self, Break, Fault};
use crate::http::{
    EVENT_STREAM, JSON_UTF8, authenticate, error_response, method_not_found, page_size, page_token,
    parse_page_token, query_param, read_body, respond, valid_version,
};
use crate::latency;
use crate::limits::{Decision, Limits};
use crate::reply::{self, Event};
use crate::request::{self, ServiceTier};
use crate::seeds::mix;
use crate::settings::QuotaQuirk;
use crate::state::{InFlight, ServerState, lock};
use crate::wire::{self, CountTokensResponse, ListModelsResponse, Model};
use crate::{batch_api, files_api};

type AppState = Arc<ServerState>;

/// The router for every path the emulator serves.
pub(crate) fn router(shared: AppState) -> Router {
    Router::new()
        .route("/{version}/models", get(list_models))
        .route(
            "/{version}/models/{*rest}",
            get(get_model).post(post_action),
        )
        .route("/{version}/batches", get(batch_api::list))
        .route(
            "/{version}/batches/{*rest}",
            get(batch_api::get)
                .post(batch_api::cancel)
                .delete(batch_api::delete),
        )
        .route("/{version}/files", get(files_api::list))
        .route(
            "/{version}/files/{*rest}",
            get(files_api::get).delete(files_api::delete),
        )
        .route("/upload/{version}/files", post(files_api::upload))
        .route(
            "/download/{version}/files/{*rest}",
            get(files_api::download),
        )
        .fallback(fallback)
        .with_state(shared)
}

/// What a POST asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Generate,
    Stream,
    CountTokens,
}

impl Action {
    fn parse(name: &str) -> Option<Action> {
        match name {
            "generateContent" => Some(Action::Generate),
            "streamGenerateContent" => Some(Action::Stream),
            "countTokens" => Some(Action::CountTokens),
            _ => None,
        }
    }

    /// The method the 404 message names: streaming calls say `generateContent` too.
    fn method_in_errors(self) -> &'static str {
        match self {
            Action::Generate | Action::Stream => "generateContent",
            Action::CountTokens => "countTokens",
        }
    }
}

/// Splits `gemini-2.5-flash:generateContent` into the model and the action.
fn split_action(rest: &str) -> (&str, Option<&str>) {
    match rest.rsplit_once(':') {
        Some((model, action)) => (model, Some(action)),
        None => (rest, None),
    }
}

/// A response that never gets written: the body fails before its first byte, so the server
/// drops the connection without sending anything.
fn dropped_connection() -> Response {
    let body = futures_util::stream::once(async {
        Err::<Bytes, io::Error>(io::Error::new(
            io::ErrorKind::ConnectionAborted,
            "emulator dropped the connection",
        ))
    });
    Response::new(Body::from_stream(body))
}

/// Sleeps unless the emulator shuts down first. Returns false on shutdown.
async fn sleep_unless_shutdown(delay: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    if delay.is_zero() {
        return true;
    }
    tokio::select! {
        _ = tokio::time::sleep(delay) => true,
        _ = shutdown.wait_for(|stop| *stop) => false,
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers.

async fn fallback(State(shared): State<AppState>) -> Response {
    method_not_found(&shared, "unknown")
}

async fn list_models(
    State(shared): State<AppState>,
    Path(version): Path<String>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let arrival = shared.arrive("", "listModels");
    let response = match list_page(&shared, &version, query.as_deref(), &headers) {
        Ok(page) => respond(200, JSON_UTF8, Body::from(wire::pretty(&page)), started),
        Err(error) => error_response(&error, false, started),
    };
    shared.finish(arrival, response.status().as_u16());
    response
}

fn list_page(
    shared: &ServerState,
    version: &str,
    query: Option<&str>,
    headers: &HeaderMap,
) -> Result<ListModelsResponse, ApiError> {
    if !valid_version(version) {
        return Err(ApiError::method_not_found());
    }
    authenticate(shared, headers, query)?;
    let size = page_size(query);
    let all = catalog::all();
    let offset = match parse_page_token(query)? {
        None => 0,
        Some(position) => usize::try_from(position)
            .ok()
            .filter(|o| *o <= all.len())
            .ok_or_else(ApiError::invalid_page_token)?,
    };
    let end = (offset + size).min(all.len());
    Ok(ListModelsResponse {
        models: all[offset..end].iter().map(Model::from).collect(),
        next_page_token: (end < all.len()).then(|| page_token(end as u64)),
    })
}

async fn get_model(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Response {
    let started = Instant::now();
    let (model, action) = split_action(&rest);
    let arrival = shared.arrive(model, "getModel");
    let result = if !valid_version(&version) || action.is_some() {
        Err(ApiError::method_not_found())
    } else {
        authenticate(&shared, &headers, query.as_deref()).and_then(|_| {
            // Inferred: the 404 wording for models.get mirrors the generateContent one.
            catalog::find_in_path(model)
                .ok_or_else(|| ApiError::model_not_found(model, "getModel", &version))
        })
    };
    let response = match result {
        Ok(info) => respond(
            200,
            JSON_UTF8,
            Body::from(wire::pretty(&Model::from(info))),
            started,
        ),
        Err(error) => error_response(&error, false, started),
    };
    shared.finish(arrival, response.status().as_u16());
    response
}

/// Everything about one POST that the steps below need.
struct Call {
    shared: AppState,
    version: String,
    model: String,
    action: Action,
    /// `alt=sse` on a streaming call (otherwise a stream is a JSON array).
    sse: bool,
    started: Instant,
}

async fn post_action(
    State(shared): State<AppState>,
    Path((version, rest)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    request: Request,
) -> Response {
    let started = Instant::now();
    let (model, action_name) = split_action(&rest);
    let method = action_name.unwrap_or("unknown");
    let arrival = shared.arrive(model, method);
    let action = action_name.and_then(Action::parse);
    let in_flight =
        matches!(action, Some(Action::Generate | Action::Stream)).then(|| InFlight::new(&shared));

    let (response, status) = match action {
        _ if !valid_version(&version) || action_name.is_none() => {
            let response = error_response(&ApiError::method_not_found(), false, started);
            (response, 404)
        }
        None if method == "batchGenerateContent" => {
            let response =
                batch_api::create(shared.clone(), &version, model, query.as_deref(), request).await;
            let status = response.status().as_u16();
            (response, status)
        }
        None => {
            let headers = request.headers().clone();
            match authenticate(&shared, &headers, query.as_deref()) {
                // A method the models do not support: the real 404 names it.
                Ok(_) => (
                    error_response(
                        &ApiError::model_not_found(model, method, &version),
                        false,
                        started,
                    ),
                    404,
                ),
                Err(error) => (error_response(&error, false, started), error.code),
            }
        }
        Some(action) => {
            let call = Call {
                sse: query_param(query.as_deref(), "alt").as_deref() == Some("sse"),
                shared: shared.clone(),
                version,
                model: model.to_string(),
                action,
                started,
            };
            call.run(query.as_deref(), request, in_flight).await
        }
    };
    shared.finish(arrival, status);
    tracing::debug!(model, method, status, "request");
    response
}

impl Call {
    fn streaming(&self) -> bool {
        self.action == Action::Stream
    }

    fn error(&self, error: &ApiError) -> (Response, u16) {
        (
            error_response(error, self.streaming(), self.started),
            error.code,
        )
    }

    /// Runs a generate or countTokens call; returns the response and the status to record
    /// (0 when no response is sent).
    async fn run(
        self,
        query: Option<&str>,
        request: Request,
        in_flight: Option<InFlight>,
    ) -> (Response, u16) {
        let (parts, body) = request.into_parts();
        let key = match authenticate(&self.shared, &parts.headers, query) {
            Ok(key) => key,
            Err(error) => return self.error(&error),
        };
        let Some(model) = catalog::find_in_path(&self.model) else {
            let error = ApiError::model_not_found(
                &self.model,
                self.action.method_in_errors(),
                &self.version,
            );
            return self.error(&error);
        };
        let parsed =
            match read_body(body, &parts.headers, self.shared.settings.max_body_bytes).await {
                Ok(bytes) => request::decode(&bytes),
                Err(error) => Err(error),
            };
        let object = match parsed {
            Ok(object) => object,
            Err(error) => return self.error(&error),
        };
        if self.action == Action::CountTokens {
            return match request::count_tokens_request(&object, &self.version) {
                Ok(total) => {
                    let body = CountTokensResponse {
                        total_tokens: total,
                        prompt_tokens_details: wire::text_details(total),
                    };
                    (
                        respond(
                            200,
                            JSON_UTF8,
                            Body::from(wire::pretty(&body)),
                            self.started,
                        ),
                        200,
                    )
                }
                Err(error) => self.error(&error),
            };
        }
        let generate = match request::generate_request(&object, &self.version) {
            Ok(generate) => generate,
            Err(error) => return self.error(&error),
        };
        if let Err(error) = self.admit(key, model, generate.prompt_tokens) {
            return self.error(&error);
        }
        let number = self.shared.generated.fetch_add(1, Ordering::Relaxed);
        let mut rng = SmallRng::seed_from_u64(mix(self.shared.settings.seed, number));
        let fault = faults::draw(&self.shared.settings.faults, self.streaming(), &mut rng);
        self.answer(fault, &generate, model, rng, in_flight).await
    }

    /// Applies the quota. Admitted requests count from their arrival.
    fn admit(&self, key: u64, model: &'static ModelInfo, tokens: u32) -> Result<(), ApiError> {
        let settings = &self.shared.settings;
        let resolve = |setting: Option<u32>, free: u32| setting.unwrap_or(free);
        let limits = Limits {
            rpm: resolve(settings.rpm, model.free_tier.rpm),
            tpm: resolve(settings.tpm, model.free_tier.tpm),
            rpd: resolve(settings.rpd, model.free_tier.rpd),
        };
        if settings.quota_quirk == Some(QuotaQuirk::Zero) {
            // Not on this tier: the real API names a limit of 0.
            return Err(ApiError::quota_exceeded(
                &[
                    (QuotaKind::RequestsPerMinute, 0),
                    (QuotaKind::RequestsPerDay, 0),
                ],
                model.model_version,
                settings.window,
            ));
        }
        if limits
            == (Limits {
                rpm: 0,
                tpm: 0,
                rpd: 0,
            })
        {
            return Ok(());
        }
        let decision = lock(&self.shared.limiter).check(
            key,
            model.model_version,
            tokens,
            limits,
            Instant::now(),
        );
        match decision {
            Decision::Admitted => Ok(()),
            Decision::Rejected {
                violations,
                mut retry_after,
            } => {
                let per_day = violations
                    .iter()
                    .any(|(kind, _)| *kind == QuotaKind::RequestsPerDay);
                if per_day && settings.quota_quirk == Some(QuotaQuirk::ShortDayDelay) {
                    retry_after = retry_after.min(settings.window / 2);
                }
                let error = ApiError::quota_exceeded(&violations, model.model_version, retry_after);
                Err(match settings.quota_quirk {
                    Some(quirk) => error.with_quirk(quirk),
                    None => error,
                })
            }
        }
    }

    async fn answer(
        self,
        fault: Fault,
        generate: &request::GenerateRequest,
        model: &'static ModelInfo,
        mut rng: SmallRng,
        in_flight: Option<InFlight>,
    ) -> (Response, u16) {
        let settings = &self.shared.settings;
        let mut shutdown = self.shared.shutdown.clone();
        match fault {
            Fault::Hang => {
                let _ = shutdown.wait_for(|stop| *stop).await;
                return (dropped_connection(), 0);
            }
            Fault::Close => return (dropped_connection(), 0),
            Fault::Overloaded | Fault::Internal => {
                if !sleep_unless_shutdown(settings.latency.base, &mut shutdown).await {
                    return (dropped_connection(), 0);
                }
                let error = if fault == Fault::Overloaded {
                    ApiError::overloaded()
                } else {
                    ApiError::internal()
                };
                return self.error(&error);
            }
            _ => {}
        }
        let tier = generate.service_tier.unwrap_or_default();
        let tier_wait = latency::tier_delay(&settings.flex, tier);
        if tier == ServiceTier::Flex {
            let number = self.shared.flex_requests.fetch_add(1, Ordering::Relaxed) + 1;
            if faults::shed(&settings.flex, number, &mut rng) {
                // Shed after waiting in the Flex queue.
                if !sleep_unless_shutdown(tier_wait, &mut shutdown).await {
                    return (dropped_connection(), 0);
                }
                return self.error(&ApiError::capacity_exhausted());
            }
        }
        let odd = match fault {
            Fault::Odd(odd) => Some(odd),
            _ => None,
        };
        let plan = reply::plan(generate, model, odd, &mut rng);
        let thinking =
            tier_wait + latency::thinking_time(&settings.latency, plan.thoughts, &mut rng);
        if !self.streaming() {
            let total = thinking + latency::writing_time(&settings.latency, plan.answer_tokens());
            if !sleep_unless_shutdown(total, &mut shutdown).await {
                return (dropped_connection(), 0);
            }
            let body = Body::from(wire::pretty(&plan.unary_body()));
            return (respond(200, JSON_UTF8, body, self.started), 200);
        }
        let events = plan.events();
        let broken = match fault {
            Fault::BrokenStream(how) => Some((break_point(&events, &mut rng), how)),
            _ => None,
        };
        let stream = ChunkStream {
            events: events.into(),
            thinking: Some(thinking),
            latency: settings.latency.clone(),
            sse: self.sse,
            sent: 0,
            broken,
            shutdown,
            done: false,
            _in_flight: in_flight,
        };
        let content_type = if self.sse { EVENT_STREAM } else { JSON_UTF8 };
        let mut response = respond(
            200,
            content_type,
            Body::from_stream(stream.into_stream()),
            self.started,
        );
        if self.sse {
            response.headers_mut().insert(
                header::CONTENT_DISPOSITION,
                HeaderValue::from_static("attachment"),
            );
        }
        (response, 200)
    }
}

/// Where a broken stream breaks: after at least one chunk when there are several.
fn break_point(events: &[Event], rng: &mut SmallRng) -> usize {
    use rand::Rng;
    if events.len() < 2 {
        0
    } else {
        rng.random_range(1..events.len())
    }
}

/// A streaming body: paced chunks, possibly broken midway.
struct ChunkStream {
    events: std::collections::VecDeque<Event>,
    /// Time before the first chunk (taken once).
    thinking: Option<Duration>,
    latency: crate::settings::Latency,
    sse: bool,
    sent: usize,
    broken: Option<(usize, Break)>,
    shutdown: watch::Receiver<bool>,
    done: bool,
    /// Keeps the request counted as in flight until the body is finished or dropped.
    _in_flight: Option<InFlight>,
}

impl ChunkStream {
    fn into_stream(
        self,
    ) -> impl futures_util::Stream<Item = Result<Bytes, io::Error>> + Send + 'static {
        futures_util::stream::unfold(self, |mut state| async move {
            let item = state.next_item().await?;
            Some((item, state))
        })
    }

    async fn next_item(&mut self) -> Option<Result<Bytes, io::Error>> {
        if self.done {
            return None;
        }
        if let Some((at, how)) = self.broken {
            if self.sent == at {
                self.done = true;
                // Let the server flush what was written so far, so the break comes midway
                // through a started body rather than before the response head.
                tokio::task::yield_now().await;
                return Some(match how {
                    // The Firebase capture writes the error as raw pretty JSON after the events.
                    Break::ErrorObject => Ok(Bytes::from(ApiError::overloaded().to_body())),
                    Break::Abort => Err(io::Error::new(
                        io::ErrorKind::ConnectionAborted,
                        "stream broken",
                    )),
                });
            }
        }
        let Some(event) = self.events.pop_front() else {
            self.done = true;
            // A JSON-array stream closes its array; an SSE stream just ends.
            return (!self.sse && self.sent > 0).then(|| Ok(Bytes::from_static(b"]")));
        };
        let delay = self.thinking.take().unwrap_or_default()
            + latency::writing_time(&self.latency, event.tokens);
        if !sleep_unless_shutdown(delay, &mut self.shutdown).await {
            self.done = true;
            return Some(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "emulator shutting down",
            )));
        }
        let bytes = if self.sse {
            wire::sse_event(&event.body)
        } else {
            // Without alt=sse the server streams one JSON array (**unverified** framing).
            let mut out = if self.sent == 0 {
                b"[".to_vec()
            } else {
                b",\r\n".to_vec()
            };
            let pretty = wire::pretty(&event.body);
            out.extend_from_slice(pretty.strip_suffix(b"\n").unwrap_or(&pretty));
            Bytes::from(out)
        };
        self.sent += 1;
        Some(Ok(bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_split_at_the_last_colon() {
        assert_eq!(
            split_action("gemini-2.5-flash:generateContent"),
            ("gemini-2.5-flash", Some("generateContent"))
        );
        assert_eq!(split_action("gemini-2.5-flash"), ("gemini-2.5-flash", None));
    }
}
