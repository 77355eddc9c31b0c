//! Turns faults into SMTP replies: the outermost layer of every stack.
//!
//! A layer that refuses answers with a reply; an `Err` from the stack is a
//! fault (disk, bug). This layer logs it and answers with a 4xx so that
//! the client keeps the mail and retries — never a panic, never a 5xx that
//! would bounce mail because of our own trouble.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use tower::BoxError;
use tower_layer::Layer;
use tower_service::Service;
use towerpost_protocol::{EnhancedCode, Reply};
use towerpost_queue::QueueError;

/// Wraps a service so that its errors become 4xx replies.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecoverErrorLayer;

impl<S> Layer<S> for RecoverErrorLayer {
    type Service = RecoverError<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RecoverError {
            inner,
            failed: None,
        }
    }
}

/// The service built by [`RecoverErrorLayer`].
#[derive(Debug, Clone)]
pub struct RecoverError<S> {
    inner: S,
    /// A `poll_ready` fault, answered by the next `call` without calling
    /// the inner service (which never became ready).
    failed: Option<Reply>,
}

impl<S, R> Service<R> for RecoverError<S>
where
    S: Service<R, Response = Reply>,
    S::Error: Into<BoxError>,
{
    type Response = Reply;
    type Error = Infallible;
    type Future = future::ResponseFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // A service that cannot become ready is a fault too; the request
        // that follows will get the fault reply from `call`.
        if let Err(e) = ready!(self.inner.poll_ready(cx)) {
            let e = e.into();
            let reply = fault_reply(&e);
            tracing::error!(target: "towerpost::smtpd", "fault: {e}; replied {reply}");
            self.failed = Some(reply);
        }
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: R) -> Self::Future {
        match self.failed.take() {
            Some(reply) => future::ResponseFuture::failed(reply),
            None => future::ResponseFuture::new(self.inner.call(req)),
        }
    }
}

/// The reply for a fault.
pub fn fault_reply(error: &BoxError) -> Reply {
    let e = EnhancedCode::new;
    match error.downcast_ref::<QueueError>() {
        Some(q) if q.is_storage_full() => {
            Reply::enhanced(452, e(4, 3, 1), "Insufficient system storage")
        }
        Some(_) => Reply::enhanced(451, e(4, 3, 0), "Error: queue file write error"),
        None => Reply::enhanced(451, e(4, 3, 0), "Error: internal error"),
    }
}

/// Futures of [`RecoverError`].
pub mod future {
    use super::*;

    pin_project_lite::pin_project! {
        /// Response future of [`RecoverError`](super::RecoverError).
        pub struct ResponseFuture<F> {
            #[pin]
            state: State<F>,
        }
    }

    pin_project_lite::pin_project! {
        #[project = StateProj]
        enum State<F> {
            Inner { #[pin] future: F },
            Failed { reply: Option<Reply> },
        }
    }

    impl<F> ResponseFuture<F> {
        pub(crate) fn new(future: F) -> Self {
            Self {
                state: State::Inner { future },
            }
        }

        pub(crate) fn failed(reply: Reply) -> Self {
            Self {
                state: State::Failed { reply: Some(reply) },
            }
        }
    }

    impl<F, E> Future for ResponseFuture<F>
    where
        F: Future<Output = Result<Reply, E>>,
        E: Into<BoxError>,
    {
        type Output = Result<Reply, Infallible>;

        fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
            let future = match self.project().state.project() {
                StateProj::Inner { future } => future,
                StateProj::Failed { reply } => {
                    return Poll::Ready(Ok(reply.take().expect("polled after completion")));
                }
            };
            Poll::Ready(Ok(match ready!(future.poll(cx)) {
                Ok(reply) => reply,
                Err(e) => {
                    let e = e.into();
                    let reply = fault_reply(&e);
                    tracing::error!(target: "towerpost::smtpd", "fault: {e}; replied {reply}");
                    reply
                }
            }))
        }
    }
}
