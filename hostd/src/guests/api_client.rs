//! An HTTP/1.1 client of one cloud-hypervisor's API socket (hyper over a tokio
//! `UnixStream`): one connection per request, as cloud-hypervisor's own `ch-remote` does;
//! the calls are rare and a fresh connection never inherits a half-read answer.

use std::path::{Path, PathBuf};
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::UnixStream;

use super::chv_api::Endpoint;

/// Every call ends within this: nested under TCG calls answer in 30–90 ms (LAB-FACTS);
/// `vm.create`/`vm.boot` load the kernel, a few seconds at worst.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Cannot connect to {}", socket.display())]
    Connect {
        socket: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP exchange with {} failed", socket.display())]
    Http {
        socket: PathBuf,
        #[source]
        source: hyper::Error,
    },
    #[error("{endpoint} did not answer within {} s", CALL_TIMEOUT.as_secs())]
    Timeout { endpoint: &'static str },
    #[error("{endpoint} answered {status}: {body}")]
    Status {
        endpoint: &'static str,
        status: u16,
        body: String,
    },
    #[error("{endpoint} answered something that is not its documented schema")]
    Decode {
        endpoint: &'static str,
        #[source]
        source: serde_json::Error,
    },
}

/// The API of one cloud-hypervisor process.
#[derive(Debug, Clone)]
pub struct ApiClient {
    socket: PathBuf,
}

impl ApiClient {
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
        }
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// A `PUT` without a body.
    pub async fn put(&self, endpoint: Endpoint) -> Result<(), ApiError> {
        self.call(endpoint, None).await.map(drop)
    }

    /// A `PUT` with a JSON body.
    pub async fn put_json<T: Serialize>(
        &self,
        endpoint: Endpoint,
        body: &T,
    ) -> Result<(), ApiError> {
        let body = serde_json::to_vec(body).expect("API requests are plain structs");
        self.call(endpoint, Some(body)).await.map(drop)
    }

    /// A `GET` whose answer is JSON of type `T`.
    pub async fn get<T: DeserializeOwned>(&self, endpoint: Endpoint) -> Result<T, ApiError> {
        let body = self.call(endpoint, None).await?;
        serde_json::from_slice(&body).map_err(|source| ApiError::Decode {
            endpoint: endpoint.path(),
            source,
        })
    }

    async fn call(&self, endpoint: Endpoint, body: Option<Vec<u8>>) -> Result<Bytes, ApiError> {
        tokio::time::timeout(CALL_TIMEOUT, self.exchange(endpoint, body))
            .await
            .map_err(|_| ApiError::Timeout {
                endpoint: endpoint.path(),
            })?
    }

    async fn exchange(&self, endpoint: Endpoint, body: Option<Vec<u8>>) -> Result<Bytes, ApiError> {
        let http = |source| ApiError::Http {
            socket: self.socket.clone(),
            source,
        };
        let stream =
            UnixStream::connect(&self.socket)
                .await
                .map_err(|source| ApiError::Connect {
                    socket: self.socket.clone(),
                    source,
                })?;
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(http)?;
        // The connection task ends with the exchange (the request says `Connection: close`).
        let driver = tokio::spawn(connection);
        let mut request = hyper::Request::builder()
            .method(endpoint.method())
            .uri(endpoint.path())
            .header(hyper::header::HOST, "localhost")
            .header(hyper::header::CONNECTION, "close");
        let body = match body {
            Some(bytes) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                Full::new(Bytes::from(bytes))
            }
            None => Full::new(Bytes::new()),
        };
        let request = request
            .body(body)
            .expect("a method, a path and fixed headers make a valid request");
        let response = sender.send_request(request).await.map_err(http)?;
        let status = response.status();
        let bytes = response
            .into_body()
            .collect()
            .await
            .map_err(http)?
            .to_bytes();
        driver.abort();
        if status.is_success() {
            Ok(bytes)
        } else {
            Err(ApiError::Status {
                endpoint: endpoint.path(),
                status: status.as_u16(),
                body: String::from_utf8_lossy(&bytes).trim().to_string(),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::UnixListener;

    use super::*;
    use crate::guests::chv_api::{VmInfo, VmState};

    /// A one-shot stand-in for cloud-hypervisor's API server: answers one request with
    /// `answer` and returns what it received.
    async fn serve_once(listener: UnixListener, answer: &'static str) -> String {
        let (mut stream, _) = listener.accept().await.expect("a client connects");
        let mut received = Vec::new();
        let mut buffer = [0u8; 4096];
        loop {
            let n = stream.read(&mut buffer).await.expect("reads");
            received.extend_from_slice(&buffer[..n]);
            let text = String::from_utf8_lossy(&received);
            if let Some(end) = text.find("\r\n\r\n") {
                let length = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length: ")
                            .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                    })
                    .unwrap_or(0);
                if received.len() >= end + 4 + length {
                    break;
                }
            }
            if n == 0 {
                break;
            }
        }
        stream.write_all(answer.as_bytes()).await.expect("writes");
        String::from_utf8_lossy(&received).into_owned()
    }

    #[tokio::test]
    async fn a_put_with_a_body_and_a_204() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).expect("binds");
        let server = tokio::spawn(serve_once(listener, "HTTP/1.1 204 No Content\r\n\r\n"));
        ApiClient::new(&socket)
            .put_json(Endpoint::VmCreate, &serde_json::json!({"payload": {}}))
            .await
            .expect("204 is success");
        let received = server.await.expect("server ran");
        assert!(
            received.starts_with("PUT /api/v1/vm.create HTTP/1.1\r\n"),
            "{received}"
        );
        assert!(received.ends_with(r#"{"payload":{}}"#), "{received}");
    }

    #[tokio::test]
    async fn a_get_decodes_and_an_error_keeps_the_body() {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).expect("binds");
        let body = r#"{"config":{},"state":"Running"}"#;
        let answer: &'static str = Box::leak(
            format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_boxed_str(),
        );
        let server = tokio::spawn(serve_once(listener, answer));
        let info: VmInfo = ApiClient::new(&socket)
            .get(Endpoint::VmInfo)
            .await
            .expect("decodes");
        assert_eq!(info.state, VmState::Running);
        server.await.expect("server ran");

        let listener = UnixListener::bind(dir.path().join("b.sock")).expect("binds");
        let server = tokio::spawn(serve_once(
            listener,
            "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 14\r\n\r\nVmBoot: failed",
        ));
        let error = ApiClient::new(dir.path().join("b.sock"))
            .put(Endpoint::VmBoot)
            .await
            .expect_err("500 is an error");
        assert_eq!(
            error.to_string(),
            "/api/v1/vm.boot answered 500: VmBoot: failed"
        );
        server.await.expect("server ran");
    }
}
