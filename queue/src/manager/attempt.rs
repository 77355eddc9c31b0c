//! One delivery attempt of one message: route its recipients, deliver per
//! destination, log each outcome the way Postfix does, return failures to
//! the sender, and store what is left.
//!
//! Why one long file: routing, per-destination delivery, logging and
//! returning failures share one attempt's state, and splitting them would
//! pass that state around in pieces.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tower::{Service, ServiceExt};
use towerpost_protocol::{Ret, Route};

use super::destination::{Feedback, Why};
use super::schedule::{backoff, expired, seconds};
use super::{Agent, Disposition, Release, Shared};
use crate::content::Content;
use crate::delivery::{DeliveryRecipient, DeliveryReport, DeliveryRequest, Outcome};
use crate::dsn::{DsnAction, DsnRecipient, DsnReport, build_dsn};
use crate::id::QueueId;
use crate::message::{Envelope, QueueState, Recipient, RecipientStatus, domain_of};

const TARGET: &str = "towerpost::qmgr";

/// Logs a recipient's status line under its [`Agent`]'s name, as
/// Postfix's mail log has it (a tracing target must be a constant).
macro_rules! log_status {
    ($agent:expr, $($arg:tt)+) => {
        match $agent {
            Agent::Smtp => tracing::info!(target: "towerpost::smtp", $($arg)+),
            Agent::Discard => tracing::info!(target: "towerpost::discard", $($arg)+),
            Agent::Error => tracing::info!(target: "towerpost::error", $($arg)+),
        }
    };
}

pub(super) async fn run(
    shared: Arc<Shared>,
    id: QueueId,
    release: Release,
) -> (QueueId, Disposition, String) {
    let mut summary = String::new();
    let disposition = match attempt(&shared, id, &release, &mut summary).await {
        Ok(d) => d,
        Err(e) if e.is_not_found() => {
            // The operator deleted it while it was being delivered.
            tracing::info!(target: TARGET, "{id}: deleted from the queue during delivery");
            summary = "deleted".into();
            Disposition::Done
        }
        Err(e) => {
            // Storage trouble: the message stays as stored, and so do its
            // index entries; try later.
            tracing::error!(target: TARGET, "{id}: {e}; will retry");
            summary = format!("deferred ({e})");
            let retry = shared.clock.now() + shared.settings.minimal_backoff_time;
            Disposition::Retry(unix(retry))
        }
    };
    (id, disposition, summary)
}

/// `sent 2, deferred 1 (reason)`: what one attempt did, for `flush --wait`.
fn summarize(results: &[Result1], too_old: bool) -> String {
    let (mut sent, mut bounced, mut deferred) = (0, 0, 0);
    let mut reason = None;
    for r in results {
        match &r.outcome {
            Outcome::Sent { .. } => sent += 1,
            Outcome::Bounced { .. } => bounced += 1,
            Outcome::Deferred { .. } if too_old => bounced += 1,
            Outcome::Deferred { reason: why, .. } => {
                deferred += 1;
                reason.get_or_insert_with(|| why.clone());
            }
        }
    }
    let mut parts = Vec::new();
    if sent > 0 {
        parts.push(format!("sent {sent}"));
    }
    if bounced > 0 {
        parts.push(format!("bounced {bounced}"));
    }
    if deferred > 0 {
        parts.push(format!(
            "deferred {deferred} ({})",
            reason.unwrap_or_default()
        ));
    }
    parts.join(", ")
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What became of one recipient, with the times for the log.
struct Result1 {
    recipient: Recipient,
    outcome: Outcome,
    agent: Agent,
    relay: String,
    queued_wait: Duration,
    setup: Duration,
    transmission: Duration,
    /// What a success notice must say, if towerpost sends one.
    success_action: Option<DsnAction>,
}

impl Result1 {
    /// An outcome decided here, without a remote host.
    fn local(recipient: Recipient, outcome: Outcome, queued_wait: Duration) -> Self {
        Self {
            recipient,
            outcome,
            agent: Agent::Error,
            relay: "none".into(),
            queued_wait,
            setup: Duration::ZERO,
            transmission: Duration::ZERO,
            success_action: None,
        }
    }

    /// The sender asked to hear of this recipient's success, and the
    /// next hop will not tell (RFC 3461 §4.2).
    fn owes_success_notice(&self) -> bool {
        matches!(self.outcome, Outcome::Sent { .. })
            && self.success_action.is_some()
            && self.recipient.notify.is_some_and(|n| n.success)
    }
}

/// One message's delivery attempt, shared by its per-destination parts.
struct Job<'a> {
    shared: &'a Shared,
    id: QueueId,
    envelope: &'a Envelope,
    /// Read when first needed — by the first part that holds its
    /// destination's slot, or by a notification — so that messages
    /// waiting for a slot hold no content in memory.
    content: tokio::sync::OnceCell<Option<Content>>,
    activated: Instant,
}

impl Job<'_> {
    /// The content; `None` when the message is gone (deleted meanwhile,
    /// or moved to quarantine because its record fails its checksum).
    async fn content(&self) -> Result<Option<Content>, crate::QueueError> {
        self.content
            .get_or_try_init(|| self.shared.queue.open_content(self.id, self.envelope))
            .await
            .cloned()
    }

    /// Whether reading the content found the message gone.
    fn content_gone(&self) -> bool {
        matches!(self.content.get(), Some(None))
    }
}

async fn attempt(
    shared: &Shared,
    id: QueueId,
    release: &Release,
    summary: &mut String,
) -> Result<Disposition, crate::QueueError> {
    let activated = Instant::now();
    let now = shared.clock.now();
    let Some(mut envelope) = shared.queue.envelope(id).await? else {
        *summary = "no longer in the queue".into();
        return Ok(Disposition::Done); // deleted meanwhile
    };
    if envelope.state == QueueState::Hold {
        *summary = "on hold".into();
        return Ok(Disposition::Held); // held meanwhile
    }
    if !release.forced
        && envelope.state == QueueState::Deferred
        && envelope.next_attempt > unix(now)
    {
        // A stale schedule entry (the message was deferred again since).
        *summary = "not due".into();
        let domains = envelope
            .recipients
            .iter()
            .map(|r| domain_of(&r.address))
            .collect();
        return Ok(Disposition::Deferred(envelope.next_attempt, domains));
    }
    tracing::info!(
        target: TARGET,
        "{id}: from=<{}>, size={}, nrcpt={} (queue active)",
        envelope.sender_text(),
        envelope.size,
        envelope.recipients.len()
    );

    // Recipients of one destination travel together, up to the limit.
    let mut groups: BTreeMap<Route, Vec<Recipient>> = BTreeMap::new();
    for r in envelope.recipients.drain(..) {
        let route = (shared.router)(&domain_of(&r.address));
        groups.entry(route).or_default().push(r);
    }
    let job = Job {
        shared,
        id,
        envelope: &envelope,
        content: tokio::sync::OnceCell::new(),
        activated,
    };
    let mut deliveries = Vec::new();
    for (route, recipients) in groups {
        let limit = shared
            .transports
            .get(&route.transport)
            .map_or(usize::MAX, |t| t.recipient_limit.max(1));
        for chunk in recipients.chunks(limit) {
            deliveries.push(deliver(&job, route.clone(), chunk.to_vec(), release));
        }
    }
    let results: Vec<Result1> = futures::future::join_all(deliveries)
        .await
        .into_iter()
        .flatten()
        .collect();
    if job.content_gone() {
        *summary = "no longer in the queue".into();
        return Ok(Disposition::Done);
    }

    // The id is the arrival time to the microsecond; the envelope keeps
    // whole seconds. Prefer the id unless the clock was stepped meanwhile.
    let stored = UNIX_EPOCH + Duration::from_secs(envelope.arrival_time);
    let arrival = match id.timestamp().duration_since(stored) {
        Ok(d) if d < Duration::from_secs(2) => id.timestamp(),
        _ => stored,
    };
    let age = now.duration_since(arrival).unwrap_or_default();
    let lifetime = if envelope.sender.is_none() {
        shared.settings.bounce_queue_lifetime
    } else {
        shared.settings.maximal_queue_lifetime
    };
    let too_old = expired(age, lifetime);
    *summary = summarize(&results, too_old);
    let mut remaining = Vec::new();
    let mut bounced = Vec::new();
    let mut succeeded = Vec::new();
    let metrics = towerpost_metrics::metrics();
    let mut any_sent = false;
    let mut any_expired = false;
    for mut r in results {
        if shared.settings.soft_bounce
            && let Outcome::Bounced { dsn, reason, .. } = &r.outcome
        {
            r.outcome = Outcome::Deferred {
                dsn: dsn.replacen('5', "4", 1),
                reason: reason.clone(),
            };
        }
        // Postfix's delays=a/b/c/d: before the queue manager (arrival to
        // activation), in it, connection setup, transmission.
        let delay = seconds(age + activated.elapsed());
        let delays = format!(
            "{}/{}/{}/{}",
            seconds(age),
            seconds(r.queued_wait),
            seconds(r.setup),
            seconds(r.transmission)
        );
        let line = |dsn: &str, status: &str| {
            format!(
                "{id}: to=<{}>, relay={}, delay={delay}, delays={delays}, dsn={dsn}, status={status}",
                r.recipient.address, r.relay
            )
        };
        match &r.outcome {
            Outcome::Sent { dsn, reply } => {
                log_status!(r.agent, "{}", line(dsn, &format!("sent ({reply})")));
                count_recipient("sent", Some(age));
                any_sent = true;
                if r.owes_success_notice() {
                    succeeded.push(r);
                }
            }
            Outcome::Bounced { dsn, reason, .. } => {
                log_status!(r.agent, "{}", line(dsn, &format!("bounced ({reason})")));
                count_recipient("bounced", Some(age));
                bounced.push(r);
            }
            Outcome::Deferred { dsn, reason } if too_old => {
                log_status!(
                    r.agent,
                    "{}",
                    line(dsn, &format!("expired, returned to sender ({reason})"))
                );
                count_recipient("expired", Some(age));
                any_expired = true;
                bounced.push(r);
            }
            Outcome::Deferred { dsn, reason } => {
                log_status!(r.agent, "{}", line(dsn, &format!("deferred ({reason})")));
                count_recipient("deferred", None);
                let mut recipient = r.recipient.clone();
                recipient.status = RecipientStatus::Deferred {
                    dsn: dsn.clone(),
                    reason: reason.clone(),
                };
                remaining.push(recipient);
            }
        }
    }

    if !bounced.is_empty() {
        metrics.messages_bounced.inc();
    }
    if any_expired {
        metrics.messages_expired.inc();
    }
    if !succeeded.is_empty() {
        // Delivered is delivered: a notice that cannot be queued is logged,
        // the recipient is not tried again for it.
        if let Err(e) = notify_sender(
            shared,
            id,
            &envelope,
            &job,
            &succeeded,
            now,
            Notice::Success,
        )
        .await
        {
            tracing::warn!(target: TARGET, "{id}: cannot queue the success notification: {e}");
        }
    }
    if !bounced.is_empty() {
        // The notification is stored before the original forgets the
        // recipients: a crash in between sends it twice, never not at all.
        if let Err(e) =
            notify_sender(shared, id, &envelope, &job, &bounced, now, Notice::Failure).await
        {
            tracing::error!(target: TARGET, "{id}: cannot queue the non-delivery notification: {e}; will retry");
            for r in bounced {
                let mut recipient = r.recipient;
                recipient.status = RecipientStatus::Deferred {
                    dsn: "4.3.0".into(),
                    reason: "non-delivery notification not yet sent".into(),
                };
                remaining.push(recipient);
            }
        }
    }

    if remaining.is_empty() {
        shared.queue.remove(id).await?;
        tracing::info!(target: TARGET, "{id}: removed");
        if any_sent {
            metrics.messages_delivered.inc();
        }
        return Ok(Disposition::Done);
    }
    metrics.messages_deferred.inc();
    let wait = backoff(
        age,
        shared.settings.minimal_backoff_time,
        shared.settings.maximal_backoff_time,
    );
    let warn_after = shared.settings.delay_warning_time;
    if !warn_after.is_zero() && !envelope.delay_warned && age >= warn_after {
        let delayed: Vec<Result1> = delayed_results(&remaining);
        let until = arrival + lifetime;
        match notify_sender(
            shared,
            id,
            &envelope,
            &job,
            &delayed,
            now,
            Notice::Delay { until },
        )
        .await
        {
            Ok(()) => envelope.delay_warned = true,
            Err(e) => {
                tracing::warn!(target: TARGET, "{id}: cannot queue the delay notification: {e}")
            }
        }
    }
    envelope.recipients = remaining;
    envelope.state = QueueState::Deferred;
    envelope.next_attempt = unix(now + wait);
    shared.queue.update(id, &envelope).await?;
    let domains = envelope
        .recipients
        .iter()
        .map(|r| domain_of(&r.address))
        .collect();
    Ok(Disposition::Deferred(envelope.next_attempt, domains))
}

/// Delivers one destination's recipients. `defer_transports` parks a
/// recipient unless a flush released it.
async fn deliver(
    job: &Job<'_>,
    route: Route,
    recipients: Vec<Recipient>,
    release: &Release,
) -> Vec<Result1> {
    if !job
        .shared
        .settings
        .defer_transports
        .contains(&route.transport)
    {
        return send_to_agent(job, route, recipients, release.forced).await;
    }
    let (released, parked): (Vec<_>, Vec<_>) = recipients
        .into_iter()
        .partition(|r| release.releases(&domain_of(&r.address)));
    let waited = job.activated.elapsed();
    let parked_outcome = Outcome::Deferred {
        dsn: "4.3.2".into(),
        reason: "deferred transport".into(),
    };
    let mut results: Vec<Result1> = parked
        .into_iter()
        .map(|r| Result1::local(r, parked_outcome.clone(), waited))
        .collect();
    if !released.is_empty() {
        results.extend(send_to_agent(job, route, released, release.forced).await);
    }
    results
}

/// Hands recipients to the transport's delivery agent, within the
/// destination's concurrency window and pace. `forced` (a flush asked for
/// this attempt) tries a destination even while it is dead.
async fn send_to_agent(
    job: &Job<'_>,
    route: Route,
    recipients: Vec<Recipient>,
    forced: bool,
) -> Vec<Result1> {
    let Job {
        shared,
        id,
        envelope,
        activated,
        ..
    } = *job;
    let n = recipients.len();
    // An agent's own report is logged under the agent's name; anything
    // decided here instead, under the error service's.
    let mut agent = Agent::Error;
    let report = if let Some(t) = shared.transports.get(&route.transport) {
        match shared
            .destinations
            .start(route.clone(), t.concurrency_limit, t.rate_delay, forced)
            .await
        {
            // Postfix's words for mail of a dead destination.
            Err(why) => DeliveryReport::all(
                n,
                Outcome::Deferred {
                    dsn: why.dsn,
                    reason: format!("delivery temporarily suspended: {}", why.reason),
                },
            ),
            Ok(slot) => {
                if let Some(pacing) = t.pacing {
                    shared.pace(&route, pacing).await;
                }
                let content = match job.content().await {
                    Ok(Some(content)) => content,
                    // Gone: the attempt ends without a word about these
                    // recipients (see `content_gone`).
                    Ok(None) => {
                        slot.finish(Feedback::None);
                        return Vec::new();
                    }
                    Err(e) => {
                        slot.finish(Feedback::None);
                        tracing::error!(target: TARGET, "{id}: {e}");
                        return recipients
                            .into_iter()
                            .map(|r| {
                                let outcome = Outcome::Deferred {
                                    dsn: "4.3.0".into(),
                                    reason: format!("cannot read the queued message: {e}"),
                                };
                                Result1::local(r, outcome, activated.elapsed())
                            })
                            .collect();
                    }
                };
                let request = DeliveryRequest {
                    queue_id: id,
                    transport: route.transport.clone(),
                    nexthop: route.nexthop.clone(),
                    sender: envelope.sender.clone(),
                    recipients: recipients
                        .iter()
                        .map(|r| DeliveryRecipient {
                            address: r.address.clone(),
                            notify: r.notify,
                            orcpt: r.orcpt.clone(),
                        })
                        .collect(),
                    content,
                    eight_bit_mime: envelope.eight_bit_mime,
                    smtputf8: envelope.smtputf8,
                    ret: envelope.ret,
                    envid: envelope.envid.clone(),
                };
                let mut service = t.service.clone();
                let result = match service.ready().await {
                    Ok(s) => s.call(request).await,
                    Err(e) => Err(e),
                };
                slot.finish(match &result {
                    Ok(report) if report.site_failure => {
                        Feedback::Failed(report.outcomes.first().map(why).unwrap_or_default())
                    }
                    Ok(_) => Feedback::Reached,
                    Err(_) => Feedback::None,
                });
                match result {
                    Ok(report) if report.outcomes.len() == n => {
                        agent = t.agent;
                        report
                    }
                    Ok(_) => DeliveryReport::all(
                        n,
                        Outcome::Deferred {
                            dsn: "4.3.0".into(),
                            reason: format!(
                                "delivery agent {} answered for the wrong recipients",
                                route.transport
                            ),
                        },
                    ),
                    Err(e) => DeliveryReport::all(
                        n,
                        Outcome::Deferred {
                            dsn: "4.3.0".into(),
                            reason: format!("delivery temporarily suspended: {e}"),
                        },
                    ),
                }
            }
        }
    } else {
        DeliveryReport::all(
            n,
            Outcome::Deferred {
                dsn: "4.3.5".into(),
                reason: format!(
                    "mail transport unavailable: no transport {}",
                    route.transport
                ),
            },
        )
    };
    let queued_wait = activated
        .elapsed()
        .saturating_sub(report.setup + report.transmission);
    if agent == Agent::Smtp {
        towerpost_metrics::metrics()
            .delivery_duration
            .observe((report.setup + report.transmission).as_secs_f64());
    }
    recipients
        .into_iter()
        .zip(report.outcomes)
        .map(|(recipient, outcome)| Result1 {
            recipient,
            outcome,
            agent,
            relay: report.relay.clone(),
            queued_wait,
            setup: report.setup,
            transmission: report.transmission,
            success_action: report.success_action,
        })
        .collect()
}

/// Counts one recipient's outcome, and for a final one (sent, returned)
/// its time in the queue.
fn count_recipient(outcome: &'static str, time_in_queue: Option<Duration>) {
    let metrics = towerpost_metrics::metrics();
    metrics
        .recipients
        .get_or_create(&towerpost_metrics::OutcomeLabels { outcome })
        .inc();
    if let Some(t) = time_in_queue {
        metrics.queue_time.observe(t.as_secs_f64());
    }
}

/// The DSN's `Remote-MTA` host name (RFC 3464 §2.3.5, `dns; name`) from
/// the log's `host[address]:port`, if a remote host was talked to.
fn remote_mta(relay: &str) -> Option<String> {
    let host = relay.split_once('[').map_or(relay, |(host, _)| host);
    (relay != "none" && !host.is_empty()).then(|| host.to_owned())
}

/// What an outcome says, for a dead destination's deferrals.
fn why(outcome: &Outcome) -> Why {
    let (dsn, reason) = match outcome {
        Outcome::Sent { dsn, reply } => (dsn, reply),
        Outcome::Deferred { dsn, reason } | Outcome::Bounced { dsn, reason, .. } => (dsn, reason),
    };
    Why {
        dsn: dsn.clone(),
        reason: reason.clone(),
    }
}

/// The still-deferred recipients as report entries for a delay warning.
fn delayed_results(remaining: &[Recipient]) -> Vec<Result1> {
    remaining
        .iter()
        .map(|r| {
            let (dsn, reason) = match &r.status {
                RecipientStatus::Deferred { dsn, reason } => (dsn.clone(), reason.clone()),
                RecipientStatus::Pending => ("4.0.0".to_owned(), "delivery pending".to_owned()),
            };
            Result1::local(r.clone(), Outcome::Deferred { dsn, reason }, Duration::ZERO)
        })
        .collect()
}

/// Which notification to send.
#[derive(Debug, Clone, Copy)]
enum Notice {
    /// Non-delivery (bounced or expired).
    Failure,
    /// Still trying, until then.
    Delay { until: SystemTime },
    /// Delivered or relayed, for `NOTIFY=SUCCESS`.
    Success,
}

/// Queues an RFC 3464 notification to the sender: non-delivery, delay or
/// success. Never for the null sender (RFC 5321 §4.5.5), and only for
/// recipients whose NOTIFY asks for it (default: failures and delays, as
/// Postfix; success only when asked).
async fn notify_sender(
    shared: &Shared,
    id: QueueId,
    envelope: &Envelope,
    job: &Job<'_>,
    results: &[Result1],
    now: SystemTime,
    notice: Notice,
) -> Result<(), crate::QueueError> {
    let Some(sender) = &envelope.sender else {
        if matches!(notice, Notice::Failure) {
            tracing::info!(target: TARGET, "{id}: undeliverable notification discarded (null sender)");
        }
        return Ok(());
    };
    let what = match notice {
        Notice::Delay { .. } => "delay",
        Notice::Failure => "non-delivery",
        Notice::Success => "delivery status",
    };
    let retry_until = match notice {
        Notice::Delay { until } => Some(until),
        _ => None,
    };
    let recipients: Vec<DsnRecipient> = results
        .iter()
        .filter(|r| match (r.recipient.notify, &notice) {
            (Some(n), Notice::Delay { .. }) => n.delay,
            (Some(n), Notice::Failure) => n.failure,
            (Some(n), Notice::Success) => n.success,
            // Postfix's default without NOTIFY: DELAY,FAILURE.
            (None, notice) => !matches!(notice, Notice::Success),
        })
        .map(|r| {
            let action = match notice {
                Notice::Failure => DsnAction::Failed,
                Notice::Delay { .. } => DsnAction::Delayed,
                Notice::Success => r.success_action.unwrap_or(DsnAction::Relayed),
            };
            let (dsn, reason, diagnostic) = match &r.outcome {
                Outcome::Bounced {
                    dsn,
                    reason,
                    diagnostic,
                } => (dsn.clone(), reason.clone(), diagnostic.clone()),
                Outcome::Deferred { dsn, reason } => (dsn.clone(), reason.clone(), None),
                Outcome::Sent { dsn, reply } => (dsn.clone(), reply.clone(), None),
            };
            DsnRecipient {
                address: r.recipient.address.to_string(),
                orcpt: r.recipient.orcpt.clone(),
                action,
                status: dsn,
                remote_mta: remote_mta(&r.relay),
                diagnostic,
                reason,
            }
        })
        .collect();
    if recipients.is_empty() {
        return Ok(());
    }
    let Some(content) = job.content().await? else {
        return Ok(()); // gone meanwhile: the attempt ends as done
    };
    let size_limit = shared.settings.bounce_size_limit;
    // A large message's head holds its header section, which is all a
    // notice returns of an original over `bounce_size_limit`; only an
    // original within the limit is read whole.
    let fits = content.len() <= size_limit as u64;
    let whole;
    let original: &[u8] = if content.is_whole() || !fits {
        content.head()
    } else {
        whole = content
            .to_vec()
            .await
            .map_err(crate::QueueError::content_file)?;
        &whole
    };
    let report = DsnReport {
        reporting_mta: &shared.settings.myhostname,
        queue_id: &id.to_string(),
        sender: sender.as_str(),
        envid: envelope.envid.as_deref(),
        arrival: UNIX_EPOCH + Duration::from_secs(envelope.arrival_time),
        now,
        recipients: &recipients,
        original,
        // RET=FULL asks for the whole message in a failure notice only
        // (RFC 3461 §4.3); others return the header section.
        headers_only: envelope.ret == Some(Ret::Headers)
            || matches!(notice, Notice::Success)
            || !fits,
        size_limit,
        will_retry_until: retry_until,
    };
    let message = build_dsn(&report);
    // An 8-bit original (or 8-bit text) makes the notification 8-bit too.
    let eight_bit_mime = !message.is_ascii();
    let bounce_id = shared.queue.new_id();
    let bounce = Envelope {
        client: "local".into(),
        eight_bit_mime,
        smtputf8: envelope.smtputf8,
        ..Envelope::new(
            None,
            vec![Recipient::new(sender.clone())],
            unix(now),
            message.len() as u64,
        )
    };
    shared.queue.enqueue(bounce_id, &bounce, message).await?;
    tracing::info!(target: "towerpost::bounce", "{id}: sender {what} notification: {bounce_id}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::remote_mta;

    #[test]
    fn remote_mta_is_the_host_name_only() {
        assert_eq!(
            remote_mta("mx.example.com[192.0.2.1]:25").as_deref(),
            Some("mx.example.com")
        );
        assert_eq!(
            remote_mta("127.0.0.1[127.0.0.1]:2525").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(remote_mta("none"), None);
        assert_eq!(remote_mta("[192.0.2.1]:25"), None);
    }
}
