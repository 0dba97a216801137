//! A pass-through proxy in front of the real Chroma server that can refuse one kind of call,
//! for the faults real Chroma will not produce on demand (a delete refused with 400).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;

#[derive(Clone)]
pub struct ChromaProxy {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    refuse_deletes: AtomicBool,
    refused: AtomicUsize,
}

impl ChromaProxy {
    /// Forwards everything to `upstream` (Chroma's base URL) from a free loopback port.
    pub async fn start(upstream: &str) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the Chroma proxy");
        let addr = listener.local_addr().expect("addr");
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_string(),
            client: reqwest::Client::new(),
            refuse_deletes: AtomicBool::new(false),
            refused: AtomicUsize::new(0),
        });
        let app = Router::new()
            .fallback(forward)
            .with_state(Arc::clone(&shared));
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Self { addr, shared }
    }

    /// For `CHROMA_URL`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on (`true`), record deletes are answered 400 as Chroma answers an invalid
    /// request, and not forwarded.
    pub fn refuse_deletes(&self, refuse: bool) {
        self.shared.refuse_deletes.store(refuse, Ordering::SeqCst);
    }

    /// How many deletes were refused.
    pub fn refused(&self) -> usize {
        self.shared.refused.load(Ordering::SeqCst)
    }
}

async fn forward(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
    if method == Method::POST
        && uri.path().ends_with("/delete")
        && shared.refuse_deletes.load(Ordering::SeqCst)
    {
        shared.refused.fetch_add(1, Ordering::SeqCst);
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(serde_json::json!({
                "error": "InvalidArgumentError",
                "message": "refused by the test's proxy"
            })),
        )
            .into_response();
    }
    let mut request = shared
        .client
        .request(method, format!("{}{path}", shared.upstream))
        .body(body);
    for (name, value) in &headers {
        if name != axum::http::header::HOST && name != axum::http::header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    match request.send().await {
        Ok(answer) => {
            let status = answer.status();
            let content_type = answer.headers().get(reqwest::header::CONTENT_TYPE).cloned();
            let bytes = answer.bytes().await.unwrap_or_default();
            let mut response = (status, bytes).into_response();
            if let Some(content_type) = content_type {
                response
                    .headers_mut()
                    .insert(axum::http::header::CONTENT_TYPE, content_type);
            }
            response
        }
        Err(err) => (StatusCode::BAD_GATEWAY, err.to_string()).into_response(),
    }
}
