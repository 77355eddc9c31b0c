//! A layer from a decision: the shape of every refusing middleware.
//!
//! Most policy is "look at the request, maybe answer it yourself":
//! `smtpd_etrn_restrictions`, the rate limits, a user's sender check. A
//! [`SmtpPolicy`] is that decision — a trait, implemented for closures —
//! and [`PolicyLayer`] turns it into a tower layer that answers refusals
//! itself and passes everything else to the inner service, without
//! boxing a future.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tower_layer::Layer;
use tower_service::Service;
use towerpost_protocol::Reply;

use crate::request::SmtpRequest;

/// Decides whether to answer a request instead of the inner service.
pub trait SmtpPolicy: Send + Sync + 'static {
    /// `Some(reply)` to refuse (or otherwise answer) the request here,
    /// `None` to pass it on.
    fn check(&self, request: &SmtpRequest) -> Option<Reply>;
}

impl<F> SmtpPolicy for F
where
    F: Fn(&SmtpRequest) -> Option<Reply> + Send + Sync + 'static,
{
    fn check(&self, request: &SmtpRequest) -> Option<Reply> {
        self(request)
    }
}

/// Builds [`Policy`] services sharing one policy.
#[derive(Debug)]
pub struct PolicyLayer<P> {
    policy: Arc<P>,
}

impl<P> Clone for PolicyLayer<P> {
    fn clone(&self) -> Self {
        Self {
            policy: self.policy.clone(),
        }
    }
}

impl<P: SmtpPolicy> PolicyLayer<P> {
    /// A layer applying `policy`.
    pub fn new(policy: P) -> Self {
        Self {
            policy: Arc::new(policy),
        }
    }

    /// The policy (for its own accessors, such as statistics).
    pub fn policy(&self) -> &P {
        &self.policy
    }
}

impl<S, P> Layer<S> for PolicyLayer<P> {
    type Service = Policy<S, P>;

    fn layer(&self, inner: S) -> Self::Service {
        Policy {
            inner,
            policy: self.policy.clone(),
        }
    }
}

/// Answers what its policy refuses, passes the rest on.
#[derive(Debug)]
pub struct Policy<S, P> {
    inner: S,
    policy: Arc<P>,
}

impl<S: Clone, P> Clone for Policy<S, P> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
            policy: self.policy.clone(),
        }
    }
}

impl<S, P> Service<SmtpRequest> for Policy<S, P>
where
    S: Service<SmtpRequest, Response = Reply>,
    P: SmtpPolicy,
{
    type Response = Reply;
    type Error = S::Error;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: SmtpRequest) -> Self::Future {
        match self.policy.check(&request) {
            Some(reply) => future::ResponseFuture::answered(reply),
            None => future::ResponseFuture::inner(self.inner.call(request)),
        }
    }
}

/// Futures of [`Policy`].
pub mod future {
    use super::*;

    pin_project_lite::pin_project! {
        /// Response future of [`Policy`](super::Policy).
        pub struct ResponseFuture<F> {
            #[pin]
            state: State<F>,
        }
    }

    pin_project_lite::pin_project! {
        #[project = StateProj]
        enum State<F> {
            Answered { reply: Option<Reply> },
            Inner { #[pin] future: F },
        }
    }

    impl<F> ResponseFuture<F> {
        pub(crate) fn answered(reply: Reply) -> Self {
            Self {
                state: State::Answered { reply: Some(reply) },
            }
        }

        pub(crate) fn inner(future: F) -> Self {
            Self {
                state: State::Inner { future },
            }
        }
    }

    impl<F, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Reply, E>>,
    {
        type Output = Result<Reply, E>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            match self.project().state.project() {
                StateProj::Answered { reply } => {
                    Poll::Ready(Ok(reply.take().expect("polled after completion")))
                }
                StateProj::Inner { future } => future.poll(cx),
            }
        }
    }
}
