//! The command lines of the Postfix-compatible front ends: `postqueue`
//! and `sendmail` (invoked by those names, or as `towerpost postqueue …`),
//! parsed into the control request they send. Postfix's option letters
//! and its refusals; no clap here, because these are Postfix's grammars
//! (clustered `-qRsite`, `-sSITE`), not ours.

use towerpost::control::ControlRequest;
use towerpost_flush::FlushTarget;

/// A flush request that answers at once (`--wait` sets `wait`).
pub(crate) fn flush_request(target: FlushTarget) -> ControlRequest {
    ControlRequest::Flush {
        target,
        wait: false,
        progress: false,
    }
}

fn site(name: &str) -> FlushTarget {
    FlushTarget::Site(name.to_owned())
}

fn queue_id(id: &str) -> FlushTarget {
    FlushTarget::QueueId(id.to_owned())
}

/// What a postqueue or sendmail command line asks for.
pub(crate) enum PostqueueAction {
    List {
        json: bool,
    },
    Flush(ControlRequest),
    /// Nothing to do (`sendmail -q30m`): exit 0, as Postfix does.
    Nothing,
    /// sendmail's default mode: a message on standard input.
    Submit {
        request: ControlRequest,
        /// `-i`/`-oi`: a line with a lone `.` does not end the input.
        ignore_dots: bool,
    },
}

/// `postqueue -f | -s site | -i queue_id | -p | -j` (one of them).
pub(crate) fn postqueue_action(args: &[String]) -> Result<PostqueueAction, String> {
    let mut action = None;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let next = match arg.as_str() {
            "-f" => PostqueueAction::Flush(flush_request(FlushTarget::All)),
            "-p" => PostqueueAction::List { json: false },
            "-j" => PostqueueAction::List { json: true },
            "-v" => continue,
            "-s" | "-i" => {
                let value = it
                    .next()
                    .ok_or(format!("option {arg} requires an argument"))?;
                let target = if arg == "-s" {
                    site(value)
                } else {
                    queue_id(value)
                };
                PostqueueAction::Flush(flush_request(target))
            }
            other if other.starts_with("-s") || other.starts_with("-i") => {
                let value = &other[2..];
                let target = if other.starts_with("-s") {
                    site(value)
                } else {
                    queue_id(value)
                };
                PostqueueAction::Flush(flush_request(target))
            }
            other => {
                return Err(format!(
                    "usage: postqueue -f | -i queue_id | -j | -p | -s site (not {other:?})"
                ));
            }
        };
        if action.replace(next).is_some() {
            return Err("usage: postqueue: specify one of -f, -i, -j, -p, -s".into());
        }
    }
    action.ok_or_else(|| "usage: postqueue -f | -i queue_id | -j | -p | -s site".into())
}

/// `sendmail -q | -qRsite | -qIqueue_id | -bp`, and otherwise a message
/// from standard input: `-t`, `-f sender`, `-i`, recipients as arguments
/// (`-q<interval>` is ignored as Postfix ignores it: queue_run_delay rules).
pub(crate) fn sendmail_action(args: &[String]) -> Result<PostqueueAction, String> {
    let mut sender = None;
    let mut recipients = Vec::new();
    let mut extract = false;
    let mut ignore_dots = false;
    let mut it = args.iter();
    let mut options_done = false;
    while let Some(arg) = it.next() {
        if options_done || !arg.starts_with('-') || arg == "-" {
            recipients.push(arg.clone());
            continue;
        }
        match arg.as_str() {
            "--" => options_done = true,
            "-bp" => return Ok(PostqueueAction::List { json: false }),
            "-bm" | "-v" | "-oi" | "-i" => ignore_dots |= arg == "-oi" || arg == "-i",
            "-t" => extract = true,
            "-q" => return Ok(PostqueueAction::Flush(flush_request(FlushTarget::All))),
            "-qR" | "-qI" => {
                let value = it
                    .next()
                    .ok_or(format!("option {arg} requires an argument"))?;
                let target = if arg == "-qR" {
                    site(value)
                } else {
                    queue_id(value)
                };
                return Ok(PostqueueAction::Flush(flush_request(target)));
            }
            "-f" | "-r" => {
                sender = Some(
                    it.next()
                        .ok_or(format!("option {arg} requires an argument"))?
                        .clone(),
                );
            }
            "-F" | "-B" | "-N" | "-V" | "-R" | "-X" | "-C" => {
                it.next(); // an option with a value that does not matter here
            }
            other if other.starts_with("-qR") => {
                return Ok(PostqueueAction::Flush(flush_request(site(&other[3..]))));
            }
            other if other.starts_with("-qI") => {
                return Ok(PostqueueAction::Flush(flush_request(queue_id(&other[3..]))));
            }
            // `-q30m`: Postfix accepts and ignores a queue-run interval
            // (queue_run_delay governs), and does nothing else.
            other
                if other
                    .strip_prefix("-q")
                    .is_some_and(|rest| rest.starts_with(|c: char| c.is_ascii_digit())) =>
            {
                return Ok(PostqueueAction::Nothing);
            }
            other if other.starts_with("-q") => {
                return Err(format!("{other:.3} is not implemented"));
            }
            other if other.starts_with("-f") || other.starts_with("-r") => {
                sender = Some(other[2..].to_owned());
            }
            other if other.starts_with("-b") => {
                return Err(format!("unsupported mode {other}: only -bm and -bp are"));
            }
            // -o options, -F/-B/-N/-V with their value attached, -m, -n …
            _ => {}
        }
    }
    Ok(PostqueueAction::Submit {
        request: ControlRequest::Submit {
            sender,
            recipients,
            extract,
        },
        ignore_dots,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<String> {
        line.split_whitespace().map(str::to_owned).collect()
    }

    fn flush_of(action: Result<PostqueueAction, String>) -> FlushTarget {
        match action {
            Ok(PostqueueAction::Flush(ControlRequest::Flush {
                target,
                wait: false,
                progress: false,
            })) => target,
            Ok(_) => panic!("not a flush"),
            Err(e) => panic!("refused: {e}"),
        }
    }

    #[test]
    fn postqueue_flushes_all_a_site_or_a_message() {
        assert_eq!(flush_of(postqueue_action(&args("-f"))), FlushTarget::All);
        assert_eq!(
            flush_of(postqueue_action(&args("-s example.com"))),
            site("example.com")
        );
        assert_eq!(
            flush_of(postqueue_action(&args("-sexample.com"))),
            site("example.com")
        );
        assert_eq!(
            flush_of(postqueue_action(&args("-v -i 0DJ4QW7H2KX"))),
            queue_id("0DJ4QW7H2KX")
        );
        assert_eq!(
            flush_of(postqueue_action(&args("-i0DJ4QW7H2KX"))),
            queue_id("0DJ4QW7H2KX")
        );
        assert!(matches!(
            postqueue_action(&args("-j")),
            Ok(PostqueueAction::List { json: true })
        ));
    }

    #[test]
    fn postqueue_refuses_two_actions_none_or_a_missing_value() {
        for line in ["-f -p", "", "-s", "-x"] {
            assert!(postqueue_action(&args(line)).is_err(), "{line:?}");
        }
    }

    #[test]
    fn sendmail_q_options_flush() {
        assert_eq!(flush_of(sendmail_action(&args("-q"))), FlushTarget::All);
        assert!(matches!(
            sendmail_action(&args("-q30m")),
            Ok(PostqueueAction::Nothing)
        ));
        assert_eq!(
            flush_of(sendmail_action(&args("-qRexample.com"))),
            site("example.com")
        );
        assert_eq!(
            flush_of(sendmail_action(&args("-qR example.com"))),
            site("example.com")
        );
        assert_eq!(
            flush_of(sendmail_action(&args("-qI0DJ4QW7H2KX"))),
            queue_id("0DJ4QW7H2KX")
        );
        assert_eq!(
            sendmail_action(&args("-qSexample.com")).err().as_deref(),
            Some("-qS is not implemented")
        );
        assert!(sendmail_action(&args("-qX")).is_err());
        assert!(sendmail_action(&args("-bs")).is_err());
    }

    #[test]
    fn sendmail_without_a_mode_submits() {
        let Ok(PostqueueAction::Submit {
            request:
                ControlRequest::Submit {
                    sender,
                    recipients,
                    extract,
                },
            ignore_dots,
        }) = sendmail_action(&args(
            "-oi -f from@example.com -F Name -t -- -odd to@example.com",
        ))
        else {
            panic!("not a submission");
        };
        assert_eq!(sender.as_deref(), Some("from@example.com"));
        assert_eq!(recipients, ["-odd", "to@example.com"]);
        assert!(extract && ignore_dots);
    }

    #[test]
    fn options_with_digits_attached_still_submit() {
        // Only `-q<digits>` is the ignored queue-run interval; `-o7`, `-h50`
        // and the like are ignored options of a submission, and an odd
        // argument is not a reason to panic.
        for line in [
            "-o7 to@example.com",
            "-h50 to@example.com",
            "-\u{e9} to@example.com",
        ] {
            assert!(
                matches!(
                    sendmail_action(&args(line)),
                    Ok(PostqueueAction::Submit { .. })
                ),
                "{line:?}"
            );
        }
    }
}
