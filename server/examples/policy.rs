//! towerpost with a sender policy: `cargo run --example policy`.
//!
//! Senders listed in a table (`POLICY_TABLE`, default `sender_access`;
//! lines `address REJECT [text]` or `address OK`) are refused at MAIL
//! FROM; every accepted message gets an `X-Policy:` header naming the
//! verdict. Shows a layer that refuses and one that changes the message.

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower::{Layer, Service};
use towerpost::{
    BoxError, Command, Config, EnhancedCode, Reply, RequestKind, ServerBuilder, SmtpRequest,
};

/// The sender table: address (lower-case) → `None` for OK, or the
/// rejection text.
#[derive(Clone, Debug, Default)]
struct SenderPolicy(Arc<HashMap<String, Option<String>>>);

impl SenderPolicy {
    fn parse(text: &str) -> Result<Self, String> {
        let mut table = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let mut words = line.splitn(3, char::is_whitespace);
            let (Some(address), Some(action)) = (words.next(), words.next()) else {
                return Err(format!(
                    "line {}: expected `address OK|REJECT [text]`",
                    n + 1
                ));
            };
            let verdict = match action.to_ascii_uppercase().as_str() {
                "OK" => None,
                "REJECT" => Some(words.next().unwrap_or("Access denied").trim().to_owned()),
                other => return Err(format!("line {}: unknown action {other}", n + 1)),
            };
            table.insert(address.to_ascii_lowercase(), verdict);
        }
        Ok(Self(Arc::new(table)))
    }
}

impl<S> Layer<S> for SenderPolicy {
    type Service = PolicyService<S>;

    fn layer(&self, inner: S) -> PolicyService<S> {
        PolicyService {
            inner,
            policy: self.clone(),
        }
    }
}

#[derive(Clone)]
struct PolicyService<S> {
    inner: S,
    policy: SenderPolicy,
}

impl<S> Service<SmtpRequest> for PolicyService<S>
where
    S: Service<SmtpRequest, Response = Reply, Error = BoxError>,
    S::Future: Send + 'static,
{
    type Response = Reply;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Reply, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: SmtpRequest) -> Self::Future {
        if let Some(Command::Mail {
            from: Some(sender), ..
        }) = request.command()
            && let Some(Some(text)) = self.policy.0.get(&sender.as_str().to_ascii_lowercase())
        {
            let reply = Reply::enhanced(
                550,
                EnhancedCode::new(5, 7, 1),
                format!("<{sender}>: Sender address rejected: {text}"),
            );
            return Box::pin(async move { Ok(reply) });
        }
        if let RequestKind::Message(message) = &mut request.kind {
            // After the Received: line the session put first.
            let at = message
                .content
                .windows(2)
                .position(|w| w == b"\r\n")
                .map_or(0, |i| {
                    // Skip the Received: header's folded lines too.
                    let mut end = i + 2;
                    while matches!(message.content.get(end), Some(b' ' | b'\t')) {
                        end += message.content[end..]
                            .windows(2)
                            .position(|w| w == b"\r\n")
                            .map_or(message.content.len() - end, |j| j + 2);
                    }
                    end
                });
            let header = b"X-Policy: sender checked by the towerpost policy example\r\n";
            message.content.splice(at..at, header.iter().copied());
        }
        Box::pin(self.inner.call(request))
    }
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let config = Config::load(
        std::env::var_os("TOWERPOST_CONFIG")
            .as_deref()
            .map(Path::new),
    )?;
    let path =
        std::env::var_os("POLICY_TABLE").map_or(PathBuf::from("sender_access"), PathBuf::from);
    let text = std::fs::read_to_string(&path).unwrap_or_default();
    let policy = SenderPolicy::parse(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    ServerBuilder::new(config).layer(policy).run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;
    use towerpost::{Address, ReceivedMessage, SessionInfo, Transaction};

    fn request(kind: RequestKind) -> SmtpRequest {
        SmtpRequest {
            session: Arc::new(SessionInfo {
                helo: Some("client.test".into()),
                esmtp: true,
                ..SessionInfo::new(
                    "192.0.2.1:1000".parse().unwrap(),
                    "127.0.0.1:25".parse().unwrap(),
                    "smtp",
                )
            }),
            transaction: Some(Arc::new(Transaction {
                sender: Some(Address::parse("ok@example.test").unwrap()),
                params: Default::default(),
                recipients: Vec::new(),
            })),
            kind,
        }
    }

    fn mail(from: &str) -> RequestKind {
        RequestKind::Command(Command::Mail {
            from: Some(Address::parse(from).unwrap()),
            params: Default::default(),
        })
    }

    #[tokio::test(flavor = "current_thread")]
    async fn listed_sender_is_refused_and_messages_get_the_header() {
        let policy =
            SenderPolicy::parse("# table\nspam@example.test REJECT go away\nok@example.test OK\n")
                .unwrap();
        let (mock, mut handle) = tower_test::mock::pair::<SmtpRequest, Reply>();
        let mut svc = policy.layer(mock.map_err(BoxError::from));
        let reply = svc
            .ready()
            .await
            .unwrap()
            .call(request(mail("SPAM@example.test")))
            .await
            .unwrap();
        assert_eq!(
            reply.to_string(),
            "550 5.7.1 <SPAM@example.test>: Sender address rejected: go away"
        );

        let content = b"Received: from a\r\n\tby b; date\r\nSubject: x\r\n\r\nbody\r\n".to_vec();
        let id = "1K1B6BQFD7Z".parse().unwrap();
        let call = svc
            .ready()
            .await
            .unwrap()
            .call(request(RequestKind::Message(ReceivedMessage {
                id,
                content,
                rest: None,
            })));
        let check = async {
            let (seen, send) = handle.next_request().await.unwrap();
            let RequestKind::Message(m) = seen.kind else {
                panic!("not a message")
            };
            assert_eq!(
                String::from_utf8(m.content).unwrap(),
                "Received: from a\r\n\tby b; date\r\nX-Policy: sender checked by the towerpost policy example\r\nSubject: x\r\n\r\nbody\r\n"
            );
            send.send_response(Reply::new(250, "queued"));
        };
        let (reply, ()) = tokio::join!(call, check);
        assert_eq!(reply.unwrap().code(), 250);
    }

    #[test]
    fn bad_table_lines_are_named() {
        assert!(
            SenderPolicy::parse("a@b.test MAYBE\n")
                .unwrap_err()
                .contains("line 1")
        );
    }
}
