//! Per-session command counts for Postfix's `disconnect` log line
//! (`ehlo=1 mail=1 rcpt=1/2 data=1 quit=1 commands=5/6`).

use std::fmt;

/// Counts of accepted and total commands per verb, in first-seen order.
#[derive(Debug, Default)]
pub(crate) struct CommandStats {
    verbs: Vec<(&'static str, u32, u32)>,
}

impl CommandStats {
    pub(crate) fn record(&mut self, verb: &'static str, ok: bool) {
        let entry = match self.verbs.iter_mut().find(|(v, ..)| *v == verb) {
            Some(e) => e,
            None => {
                self.verbs.push((verb, 0, 0));
                self.verbs.last_mut().expect("just pushed")
            }
        };
        entry.1 += u32::from(ok);
        entry.2 += 1;
    }
}

fn pair(f: &mut fmt::Formatter<'_>, name: &str, ok: u32, total: u32) -> fmt::Result {
    if ok == total {
        write!(f, " {name}={ok}")
    } else {
        write!(f, " {name}={ok}/{total}")
    }
}

impl fmt::Display for CommandStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (mut ok, mut total) = (0, 0);
        for (verb, o, t) in &self.verbs {
            pair(f, verb, *o, *t)?;
            ok += o;
            total += t;
        }
        pair(f, "commands", ok, total)
    }
}
