//! The loopback HTTP server: `/health`, `/metrics`, the status page at `/` and the JSON it
//! reads (`/api/status`, `/api/stack`, `/api/series`, `/api/audit`, `/api/dead-letters`), and the printable report at `/report`. No authentication, so it listens on loopback only
//! (the config refuses anything else); put a reverse proxy in front to reach it remotely.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::Deserialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use super::health::{Health, SourceHealth, Verdict};
use super::page_assets::{I18N_JS, INDEX_HTML, STATUS_JS};
use super::series::{ChartRange, SeriesSpec, SeriesView};
use super::state::{sink_facts, store_facts, OpsState};
use super::status::{MqttView, SinkView, StatusView, ValueKind};
use crate::model::time::now;
use crate::model::Quantity;

/// The routes, answering only requests whose `Host` names `listen` (the bound address) or
/// a configured name.
pub fn router(state: Arc<OpsState>, listen: SocketAddr) -> Router {
    Router::new()
        .route(
            "/",
            get(|h: HeaderMap| async move { INDEX_HTML.respond(&h) }),
        )
        .route(
            "/status.js",
            get(|h: HeaderMap| async move { STATUS_JS.respond(&h) }),
        )
        .route(
            "/i18n.js",
            get(|h: HeaderMap| async move { I18N_JS.respond(&h) }),
        )
        .route("/health", get(health))
        .route("/metrics", get(metrics))
        .route("/api/status", get(status))
        .route("/api/series", get(series))
        .route("/api/audit", get(audit))
        .route("/api/stack", get(stack))
        .route("/api/dead-letters", get(dead_letters))
        .route("/report", get(report_page))
        .layer(axum::middleware::from_fn_with_state(
            (state.clone(), listen),
            refuse_other_hosts,
        ))
        .with_state(state)
}

/// Answers 421 to a request whose `Host` is not this server (see [`super::host`]).
async fn refuse_other_hosts(
    State((state, listen)): State<(Arc<OpsState>, SocketAddr)>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    let generation = state.generation();
    let names = generation
        .config
        .http
        .as_ref()
        .map_or(&[][..], |http| http.allowed_hosts.as_slice());
    let allowed = super::host::allowed(host, listen, names);
    if allowed {
        return next.run(request).await;
    }
    crate::ops::metrics::http_host_refused();
    tracing::warn!(host = ?host, path = %request.uri().path(), "http request for another host refused");
    failure(
        StatusCode::MISDIRECTED_REQUEST,
        "this server answers only for its listen address, localhost and [http] allowed_hosts"
            .into(),
    )
}

/// Serves until `stop` turns true, then lets open requests finish.
pub async fn serve(listener: TcpListener, state: Arc<OpsState>, mut stop: watch::Receiver<bool>) {
    let shutdown = async move {
        while !*stop.borrow() {
            if stop.changed().await.is_err() {
                break;
            }
        }
    };
    let listen = match listener.local_addr() {
        Ok(listen) => listen,
        Err(e) => {
            tracing::error!("http server cannot tell its own address: {e}");
            return;
        }
    };
    if let Err(e) = axum::serve(listener, router(state, listen))
        .with_graceful_shutdown(shutdown)
        .await
    {
        tracing::error!("http server stopped: {e}");
    }
}

fn failure(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// Runs a blocking store read off the async workers.
async fn blocking<T: Send + 'static>(
    read: impl FnOnce() -> Result<T, crate::store::StoreError> + Send + 'static,
) -> Result<T, Response> {
    match tokio::task::spawn_blocking(read).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(e)) => Err(failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store read failed: {e}"),
        )),
        Err(e) => Err(failure(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("store read did not finish: {e}"),
        )),
    }
}

/// 200 while the daemon does its job (`ok`, or `degraded`: a device down, a forwarder
/// behind), 503 when it cannot (`failing`: nothing can be committed, or the store writer
/// hangs), so a load balancer or monitor acting on the code alone sees a full disk; the body
/// says why.
async fn health(State(state): State<Arc<OpsState>>) -> Response {
    let store_state = state.store_state().await;
    let reader = state.reader().clone();
    let facts = match blocking(move || store_facts(&reader)).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let generation = state.generation();
    let mqtt: Vec<SourceHealth> = generation
        .mqtt_snapshots()
        .into_iter()
        .map(|(id, s)| SourceHealth {
            id,
            connected: s.connected,
            stalled: s.stalled,
        })
        .collect();
    let now = now();
    let (known, live) = generation.devices(now);
    let devices: Vec<Arc<str>> = known.into_iter().map(|d| Arc::from(d.id)).collect();
    let body = Health::assess(&devices, &live, store_state, &facts.sinks, &mqtt, now);
    let code = match body.status {
        Verdict::Failing => StatusCode::SERVICE_UNAVAILABLE,
        Verdict::Ok | Verdict::Degraded => StatusCode::OK,
    };
    (code, Json(body)).into_response()
}

async fn metrics(State(state): State<Arc<OpsState>>) -> Response {
    let Some(handle) = state.metrics() else {
        return failure(
            StatusCode::SERVICE_UNAVAILABLE,
            "metrics are not recorded in this process".into(),
        );
    };
    let store_state = state.store_state().await;
    let reader = state.reader().clone();
    let facts = match blocking(move || store_facts(&reader)).await {
        Ok(facts) => facts,
        Err(response) => return response,
    };
    let generation = state.generation();
    let now = now();
    let (known, devices) = generation.devices(now);
    let collectors = super::metrics::Collectors {
        devices,
        lines: generation.live.lines(),
        mqtt: generation.mqtt_snapshots(),
        stacks: known.into_iter().map(|d| (d.id, d.stack)).collect(),
    };
    super::metrics::refresh(
        state.writer().stats(),
        store_state,
        &facts,
        &collectors,
        now.0,
    );
    super::process_metrics::refresh();
    handle.run_upkeep();
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
        .into_response()
}

async fn status(State(state): State<Arc<OpsState>>) -> Response {
    let reader = state.reader().clone();
    let read = blocking(move || reader.read(|store| Ok((store.latest()?, sink_facts(store)?.1))));
    let (latest, sinks) = match read.await {
        Ok(read) => read,
        Err(response) => return response,
    };
    let generation = state.generation();
    let now = now();
    let mut view = StatusView::build(
        &generation.config,
        &generation.devices(now).1,
        &latest,
        state.writer().stats().records_committed,
        now.0,
    );
    view.sinks = sinks
        .into_iter()
        .map(|s| {
            let uplink = generation
                .uplinks
                .iter()
                .find(|(name, _)| *name == s.name)
                .map(|(_, uplink)| uplink);
            SinkView {
                lag_seconds: s.lag_seconds(now),
                connected: uplink.map(|u| u.connected()),
                last_ack: uplink.and_then(|u| u.last_ack()).map(|t| t.0),
                name: s.name,
                backlog: s.backlog,
            }
        })
        .collect();
    view.mqtt = generation
        .mqtt_snapshots()
        .into_iter()
        .map(|(id, s)| MqttView {
            connected: s.connected,
            stalled: s.stalled.clone(),
            messages: s.messages,
            readings: s.readings,
            refused: s.refused(),
            id,
        })
        .collect();
    Json(view).into_response()
}

/// The printable HJ 75 report of a day, month or year (see [`crate::report::html_page`]).
async fn report_page(
    State(state): State<Arc<OpsState>>,
    params: Result<Query<crate::report::PageQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(query) = match params {
        Ok(p) => p,
        Err(e) => return failure(StatusCode::BAD_REQUEST, e.to_string()),
    };
    let config = state.generation().config.clone();
    let reader = state.reader().clone();
    let page = blocking(move || {
        reader.read(|store| crate::report::html_page(store, &config, &query, now()))
    })
    .await;
    match page {
        Ok(Ok(html)) => Html(html).into_response(),
        Ok(Err(usage)) => failure(StatusCode::BAD_REQUEST, usage),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
struct StackParams {
    id: String,
}

/// One stack opened on the page: hour-to-date, completeness, exceedances and gaps.
async fn stack(
    State(state): State<Arc<OpsState>>,
    params: Result<Query<StackParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => return failure(StatusCode::BAD_REQUEST, format!("{e}; expected ?id=STACK")),
    };
    let offset = state.generation().config.site.utc_offset;
    let reader = state.reader().clone();
    let read = blocking(move || {
        reader.read(|store| super::stack_detail::read(store, &p.id, now(), offset))
    });
    match read.await {
        Ok(detail) => Json(detail).into_response(),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
struct SeriesParams {
    stack: String,
    device: String,
    channel: String,
    /// `hour` (raw readings, the default), `day` (minutes) or `week` (hours).
    range: Option<ChartRange>,
    /// End of the window in ms since the epoch, default now.
    to: Option<i64>,
}

async fn series(
    State(state): State<Arc<OpsState>>,
    params: Result<Query<SeriesParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                format!(
                "{e}; expected ?stack=ID&device=ID&channel=NAME[&range=hour|day|week][&to=MILLIS]"
            ),
            )
        }
    };
    let range = p.range.unwrap_or(ChartRange::Hour);
    let to = p.to.unwrap_or_else(|| now().0);
    let spec = SeriesSpec::of(p.stack, p.device, p.channel, range, to);
    let reader = state.reader().clone();
    let read = spec.clone();
    let rows = match blocking(move || read.read(&reader)).await {
        Ok(rows) => rows,
        Err(response) => return response,
    };
    let generation = state.generation();
    let limit = rows
        .last()
        .and_then(|s| s.record.quantity)
        .and_then(|q: Quantity| generation.limits.get(&(spec.stack.clone(), q)).copied());
    let mut view = SeriesView::build(&spec, &rows, limit);
    if view.kind == Some(ValueKind::Raw) {
        let last = rows.last().map(|s| &s.record);
        let unit = last.and_then(|r| r.unit);
        let quantity = last.and_then(|r| r.quantity);
        view.unit = generation
            .config
            .raw_unit(&spec.device, &spec.channel, quantity, unit)
            .map(|u| u.symbol());
    }
    Json(view).into_response()
}

#[derive(Deserialize)]
struct AuditParams {
    /// Start of the window in ms since the epoch, default 24 hours before `to`.
    from: Option<i64>,
    /// End of the window (exclusive), default now.
    to: Option<i64>,
}

/// The audit trail of a window, newest first:
/// `{"entries":[{"ts","source","how","item","old","new","file","checksum"}]}`.
async fn audit(
    State(state): State<Arc<OpsState>>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Query(p) = match params {
        Ok(p) => p,
        Err(e) => {
            return failure(
                StatusCode::BAD_REQUEST,
                format!("{e}; expected ?from=MILLIS&to=MILLIS"),
            )
        }
    };
    let to = p.to.unwrap_or_else(|| now().0.saturating_add(1));
    let from = p.from.unwrap_or_else(|| to.saturating_sub(24 * 3_600_000));
    if from > to {
        return failure(
            StatusCode::BAD_REQUEST,
            format!("from ({from}) must not be after to ({to})"),
        );
    }
    let reader = state.reader().clone();
    match blocking(move || reader.read(|store| store.audit_entries(from, to))).await {
        Ok(entries) => Json(serde_json::json!({ "entries": entries })).into_response(),
        Err(response) => response,
    }
}

/// Dead letters the page lists, newest first: enough to see what is being refused and why;
/// `cemsd dead-letters list` shows them all.
const PAGE_DEAD_LETTERS: usize = 20;
/// A payload is cut to this many characters on the page (the store keeps it whole).
const PAGE_PAYLOAD_CHARS: usize = 160;

/// The newest dead letters (received but refused, or refused by a server), passwords
/// already masked by the store.
async fn dead_letters(State(state): State<Arc<OpsState>>) -> Response {
    let reader = state.reader().clone();
    match blocking(move || reader.read(|store| store.dead_letters(PAGE_DEAD_LETTERS))).await {
        Ok(letters) => {
            let letters: Vec<_> = letters
                .iter()
                .map(|d| {
                    let text = String::from_utf8_lossy(&d.payload);
                    let mut payload: String = text.chars().take(PAGE_PAYLOAD_CHARS).collect();
                    if text.chars().nth(PAGE_PAYLOAD_CHARS).is_some() {
                        payload.push('…');
                    }
                    serde_json::json!({
                        "id": d.id,
                        "ts": d.ts.millis(),
                        "source": d.source,
                        "reason": d.reason,
                        "payload": payload,
                        "bytes": d.payload.len(),
                    })
                })
                .collect();
            Json(serde_json::json!({ "letters": letters })).into_response()
        }
        Err(response) => response,
    }
}
