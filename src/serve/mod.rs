//! `apigen-mt serve`: the in-process engine behind an OpenAI-compatible HTTP API, so that other
//! tools (and other runs of this one) can use it.
//!
//! Endpoints: `/v1/models`, `/v1/completions`, `/v1/chat/completions` (streamed as server-sent
//! events or not), `/health`, and llama-server's `/tokenize` and `/props`, which let a client
//! render prompts with the served model's own template. Every request is an engine request like
//! any other, so continuous batching, the prefix cache and batch invariance carry over: the same
//! request with the same seed gives the same text whatever else is in flight.
//!
//! The server bounds the requests it holds (`--max-queue`; beyond it, 503), cancels a request
//! whose client hangs up, answers every bad request with an OpenAI-style JSON error, and on
//! SIGTERM or Ctrl-C stops taking connections, lets the requests in flight finish for a grace
//! period, then cancels the rest and exits.

mod error;
mod request;
mod routes;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, Result};
use axum::extract::{Request as HttpRequest, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::Semaphore;

use crate::engine::loaded::Frontend;
use crate::engine::{CancelToken, EngineHandle};
pub use error::ApiError;

/// How the server listens and what it takes.
#[derive(Debug, Clone)]
pub struct Options {
    pub host: String,
    /// 0 picks a free port; the address is printed either way.
    pub port: u16,
    /// Requests without `Authorization: Bearer KEY` get 401 (except `/health`).
    pub api_key: Option<String>,
    /// The name `/v1/models` lists and requests may give as `model`.
    pub model_name: String,
    /// Requests held at once, running or waiting; more get 503.
    pub max_queue: usize,
    /// How long requests in flight may finish after a shutdown signal.
    pub shutdown_grace: Duration,
}

/// What every handler shares.
pub(crate) struct Shared {
    pub engine: EngineHandle,
    /// The model's tokenizer and template, for `/tokenize` and `/props`.
    pub text: Option<Frontend>,
    pub name: String,
    api_key: Option<String>,
    pub queue: Arc<Semaphore>,
    pub max_queue: usize,
    /// The cancel tokens of the requests in flight, cancelled together when shutdown's grace ends.
    in_flight: Mutex<HashMap<u64, CancelToken>>,
    next: AtomicU64,
}

impl Shared {
    /// A token for one generation, cancelled when the returned guard drops (the client hung up,
    /// or the handler ended) or when shutdown's grace runs out.
    pub fn cancel_token(self: &Arc<Self>) -> (CancelToken, CancelGuard) {
        let token = CancelToken::default();
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).insert(id, token.clone());
        (token.clone(), CancelGuard { shared: self.clone(), id, token })
    }

    fn cancel_all(&self) {
        for token in self.in_flight.lock().unwrap_or_else(|e| e.into_inner()).values() {
            token.cancel();
        }
    }
}

/// Cancels its generation when dropped: when the response is done, that is a no-op; when the
/// client went away first, the engine stops working on it.
pub(crate) struct CancelGuard {
    shared: Arc<Shared>,
    id: u64,
    token: CancelToken,
}

impl Drop for CancelGuard {
    fn drop(&mut self) {
        self.token.cancel();
        self.shared.in_flight.lock().unwrap_or_else(|e| e.into_inner()).remove(&self.id);
    }
}

/// Serves `engine` until SIGTERM or Ctrl-C. `text` is the model's text side for `/tokenize` and
/// `/props`. `ready` is called with the bound address once the server takes connections.
pub fn serve(engine: EngineHandle, text: Option<Frontend>, options: Options, ready: impl FnOnce(SocketAddr)) -> Result<()> {
    if options.max_queue == 0 {
        anyhow::bail!("--max-queue must be at least 1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        // Generations block a thread each; the queue bound keeps them from piling up.
        .max_blocking_threads(options.max_queue * 2 + 4)
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    let shared = Arc::new(Shared {
        engine,
        text,
        name: options.model_name.clone(),
        api_key: options.api_key.clone(),
        queue: Arc::new(Semaphore::new(options.max_queue)),
        max_queue: options.max_queue,
        in_flight: Mutex::new(HashMap::new()),
        next: AtomicU64::new(0),
    });
    let result = runtime.block_on(async {
        let address = format!("{}:{}", options.host, options.port);
        let listener = tokio::net::TcpListener::bind(&address).await.with_context(|| format!("cannot listen on {address}"))?;
        let bound = listener.local_addr()?;
        ready(bound);
        let app = router(shared.clone());
        let signal = shutdown_signal();
        let grace = options.shutdown_grace;
        let cancel = shared.clone();
        let server = axum::serve(listener, app).with_graceful_shutdown(async move {
            signal.await;
            eprintln!("shutting down: finishing the requests in flight (up to {} s)", grace.as_secs());
            // Past the grace period, what is still running is cancelled so the server can stop.
            tokio::spawn(async move {
                tokio::time::sleep(grace).await;
                cancel.cancel_all();
            });
        });
        server.await.context("serving")
    });
    // Generations still running were cancelled; do not wait on them forever.
    runtime.shutdown_timeout(Duration::from_secs(5));
    result
}

fn router(shared: Arc<Shared>) -> Router {
    let api = Router::new()
        .route("/v1/models", get(routes::models))
        .route("/v1/completions", post(routes::completions))
        .route("/v1/chat/completions", post(routes::chat))
        .route("/tokenize", post(routes::tokenize))
        .route("/props", get(routes::props))
        .route_layer(middleware::from_fn_with_state(shared.clone(), authorize));
    Router::new()
        .route("/health", get(routes::health))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(axum::extract::DefaultBodyLimit::max(64 << 20))
        .with_state(shared)
}

/// Checks `Authorization: Bearer KEY` when the server has a key.
async fn authorize(State(shared): State<Arc<Shared>>, request: HttpRequest, next: Next) -> Response {
    if let Some(key) = &shared.api_key {
        let given =
            request.headers().get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer ")).map(str::trim);
        if given != Some(key.as_str()) {
            let message = if given.is_some() { "the API key is not valid" } else { "no API key: send Authorization: Bearer KEY" };
            return ApiError::status(StatusCode::UNAUTHORIZED, message).code("invalid_api_key").into_response();
        }
    }
    next.run(request).await
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::status(StatusCode::NOT_FOUND, format!("no endpoint {}", uri.path()))
}

async fn method_not_allowed(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::status(StatusCode::METHOD_NOT_ALLOWED, format!("{} does not take {method}", uri.path()))
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => {},
        _ = terminate => {},
    }
}
