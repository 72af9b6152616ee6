//! Policies, twice: as a document the agent reads, and as rules checked over a whole action
//! trace. Each environment brings both ([`super::Environment::policy`] and
//! [`super::Environment::check`]); this module holds what every rule set shares: the
//! [`Violation`] a broken rule reports, and the bookkeeping of who the conversation is about.
//!
//! The tools already refuse what a single call can show to be wrong (a non-pending order
//! cannot be cancelled, a certificate cannot pay for a change). The rules catch what only
//! the sequence shows: acting for someone other than the identified user, changing the same
//! record twice, spending a payment method the user does not own, and so on. They look at every
//! *attempted* call, successful or not, because an attempt that the policy forbids is already a
//! mistake worth quoting back to the model that made it.
//!
//! Rule ids are stable and start with the environment's name (`<domain>.wrong_user`); each
//! domain's rules list theirs.

use serde::Serialize;
use serde_json::Value;

use crate::env::{Action, Db};

/// One broken rule: a stable id (`<domain>.wrong_user`), the index of the offending
/// action in the trace, and a message written to be quoted back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub id: String,
    pub step: usize,
    pub message: String,
}

/// The policy document of the environment called `domain`, in markdown.
pub fn document(domain: &str) -> anyhow::Result<&'static str> {
    Ok(super::resolve(domain)?.policy())
}

/// Every rule of the environment called `domain` broken by `trace` when it runs on `initial`,
/// in trace order.
pub fn check(domain: &str, initial: &Db, trace: &[Action]) -> anyhow::Result<Vec<Violation>> {
    super::resolve(domain)?.check(initial, trace)
}

/// A string argument of an action.
pub(crate) fn arg<'a>(action: &'a Action, name: &str) -> Option<&'a str> {
    action.kwargs.get(name).and_then(Value::as_str)
}

/// A record of a table in the initial database.
pub(crate) fn record<'a>(db: &'a Db, table: &str, id: &str) -> Option<&'a Value> {
    db.get(table)?.get(id)
}

/// Tracks who the conversation is about: the user identified first, and every action that
/// touches a user's data before anyone was identified, or touches somebody else.
pub(crate) struct Identity {
    user: Option<String>,
    not_authenticated: &'static str,
    wrong_user: &'static str,
}

impl Identity {
    pub(crate) fn new(not_authenticated: &'static str, wrong_user: &'static str) -> Self {
        Self { user: None, not_authenticated, wrong_user }
    }

    /// An identification call found `user`: the first becomes the conversation's user; a
    /// different one later means serving a second person.
    pub(crate) fn identify(&mut self, step: usize, action: &Action, user: &str, out: &mut Vec<Violation>) {
        match &self.user {
            None => self.user = Some(user.to_string()),
            Some(_) => self.touch(step, action, user, out),
        }
    }

    /// `action` reads or changes data of `user`.
    pub(crate) fn touch(&mut self, step: usize, action: &Action, user: &str, out: &mut Vec<Violation>) {
        match &self.user {
            None => out.push(Violation {
                id: self.not_authenticated.to_string(),
                step,
                message: format!(
                    "{} touches the data of user '{user}' before the user's identity was confirmed; \
                     identify the user first",
                    action.name
                ),
            }),
            Some(known) if known != user => out.push(Violation {
                id: self.wrong_user.to_string(),
                step,
                message: format!(
                    "{} acts for user '{user}', but this conversation identified user '{known}'; \
                     help only the identified user and refuse requests about anyone else",
                    action.name
                ),
            }),
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_exist_and_unknown_domains_are_errors() {
        for d in ["retail", "airline"] {
            assert!(document(d).unwrap().starts_with('#'), "{d} policy is a markdown document");
        }
        assert!(document("bank").unwrap_err().to_string().contains("'bank'"));
        assert!(check("bank", &Db::new(), &[]).is_err());
    }
}
