//! A mock API server for unit tests: each request asserted exactly, in
//! order, and nothing else asked afterwards.

use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

pub type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

/// One request the mock API server expects, and its answer.
pub struct Exchange {
    pub method: &'static str,
    pub uri: String,
    pub body: Option<Value>,
    pub content_type: Option<&'static str>,
    pub status: u16,
    pub reply: Value,
}

pub fn ex(method: &'static str, uri: impl Into<String>, reply: Value) -> Exchange {
    Exchange {
        method,
        uri: uri.into(),
        body: None,
        content_type: None,
        status: 200,
        reply,
    }
}

impl Exchange {
    pub fn body(mut self, body: Value) -> Exchange {
        self.body = Some(body);
        self
    }
    pub fn content_type(mut self, content_type: &'static str) -> Exchange {
        self.content_type = Some(content_type);
        self
    }
    pub fn status(mut self, status: u16) -> Exchange {
        self.status = status;
        self
    }
}

/// Serves `exchanges` in order, asserting each request; returns the handle
/// so the test can check that nothing else was asked.
pub fn serve(mut handle: Handle, exchanges: Vec<Exchange>) -> tokio::task::JoinHandle<Handle> {
    tokio::spawn(async move {
        for expected in exchanges {
            let (request, send) = handle.next_request().await.unwrap_or_else(|| {
                panic!("no request; expected {} {}", expected.method, expected.uri)
            });
            assert_eq!(
                format!("{} {}", request.method(), request.uri()),
                format!("{} {}", expected.method, expected.uri)
            );
            if let Some(content_type) = expected.content_type {
                assert_eq!(request.headers()["content-type"], content_type);
            }
            let bytes = request.into_body().collect_bytes().await.unwrap();
            if let Some(body) = expected.body {
                let got: Value = serde_json::from_slice(&bytes).unwrap();
                assert_eq!(got, body, "body of {} {}", expected.method, expected.uri);
            }
            let response = Response::builder()
                .status(expected.status)
                .body(Body::from(match &expected.reply {
                    // Plain text (logs) goes as it is.
                    Value::String(text) => text.clone().into_bytes(),
                    other => serde_json::to_vec(other).unwrap(),
                }))
                .unwrap();
            send.send_response(response);
        }
        handle
    })
}

/// After the target (and with it the client) is dropped, the mock must have
/// received nothing beyond what was expected.
pub async fn assert_no_more(server: tokio::task::JoinHandle<Handle>) {
    let mut handle = server.await.unwrap();
    if let Some((request, _)) = handle.next_request().await {
        panic!("unexpected request {} {}", request.method(), request.uri());
    }
}

pub fn namespace(uid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "kube-system", "uid": uid}})
}

pub fn identity(uid: &str) -> Exchange {
    ex("GET", "/api/v1/namespaces/kube-system", namespace(uid))
}
