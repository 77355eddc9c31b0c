//! `authorized_flush_users`: which local users may flush the queue.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;

use crate::service::{FlushOrigin, FlushRequest, FlushResponse};

/// Decides by user name; root and the queue owner are always allowed.
pub type FlushUserPolicy = Arc<dyn Fn(&str) -> bool + Send + Sync>;

/// Refuses local flush requests from users the policy does not allow.
/// SMTP requests pass untouched: ETRN has `smtpd_etrn_restrictions`.
#[derive(Clone)]
pub struct AuthorizedFlushUsersLayer {
    policy: FlushUserPolicy,
    owner_uid: u32,
}

impl AuthorizedFlushUsersLayer {
    /// A layer with `policy`; `owner_uid` is the queue owner's uid.
    pub fn new(policy: FlushUserPolicy, owner_uid: u32) -> Self {
        Self { policy, owner_uid }
    }
}

impl<S> Layer<S> for AuthorizedFlushUsersLayer {
    type Service = AuthorizedFlushUsers<S>;

    fn layer(&self, inner: S) -> Self::Service {
        AuthorizedFlushUsers {
            inner,
            policy: self.policy.clone(),
            owner_uid: self.owner_uid,
        }
    }
}

/// The service built by [`AuthorizedFlushUsersLayer`].
#[derive(Clone)]
pub struct AuthorizedFlushUsers<S> {
    inner: S,
    policy: FlushUserPolicy,
    owner_uid: u32,
}

impl<S> Service<FlushRequest> for AuthorizedFlushUsers<S>
where
    S: Service<FlushRequest, Response = FlushResponse>,
    S::Future: Send + 'static,
{
    type Response = FlushResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<FlushResponse, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: FlushRequest) -> Self::Future {
        if let FlushOrigin::Local { uid, user } = &request.origin
            && *uid != 0
            && *uid != self.owner_uid
            && !(self.policy)(user)
        {
            let refused = FlushResponse::NotAuthorized {
                user: user.clone(),
                uid: *uid,
            };
            tracing::warn!(
                target: "towerpost::postqueue",
                "User {user}({uid}) is not allowed to flush the mail queue"
            );
            towerpost_metrics::metrics().flush(request.origin.label(), "refused");
            return Box::pin(async move { Ok(refused) });
        }
        Box::pin(self.inner.call(request))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::FlushTarget;
    use tower::ServiceExt;

    fn request(uid: u32, user: &str) -> FlushRequest {
        FlushRequest {
            progress: None,
            target: FlushTarget::All,
            origin: FlushOrigin::Local {
                uid,
                user: user.into(),
            },
            wait: false,
        }
    }

    #[tokio::test(flavor = "current_thread")]
    async fn unlisted_user_is_refused_root_and_owner_pass() {
        let policy: FlushUserPolicy = Arc::new(|u| u == "alice");
        let (mock, mut handle) = tower_test::mock::pair::<FlushRequest, FlushResponse>();
        let mut svc = AuthorizedFlushUsersLayer::new(policy, 1000).layer(mock);
        let refused = svc
            .ready()
            .await
            .unwrap()
            .call(request(1001, "mallory"))
            .await
            .unwrap();
        assert_eq!(
            refused,
            FlushResponse::NotAuthorized {
                user: "mallory".into(),
                uid: 1001
            }
        );
        for (uid, user) in [(0, "root"), (1000, "towerpost"), (1002, "alice")] {
            let call = svc.ready().await.unwrap().call(request(uid, user));
            let (req, send) = handle.next_request().await.unwrap();
            assert_eq!(req, request(uid, user));
            send.send_response(FlushResponse::Started { messages: 0 });
            assert_eq!(call.await.unwrap(), FlushResponse::Started { messages: 0 });
        }
    }
}
