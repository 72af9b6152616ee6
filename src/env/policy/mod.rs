//! Domain policies, twice: as a document the agent reads, and as rules checked over a whole
//! action trace.
//!
//! The tools already refuse what a single call can show to be wrong (a non-pending order
//! cannot be cancelled, a certificate cannot pay for a change). The rules here catch what only
//! the sequence shows: acting for someone other than the identified user, changing the same
//! order twice, spending a payment method the user does not own, and so on. They look at every
//! *attempted* call, successful or not, because an attempt that the policy forbids is already a
//! mistake worth quoting back to the model that made it.
//!
//! Rule ids: `retail.not_authenticated`, `retail.wrong_user`, `retail.foreign_payment_method`,
//! `retail.order_modified_twice`, `retail.order_exchanged_twice`, `retail.return_and_cancel`,
//! `retail.return_and_exchange`, `retail.order_changed_after_cancel`;
//! `airline.not_authenticated`, `airline.wrong_user`, `airline.foreign_payment_method`,
//! `airline.multiple_certificates`, `airline.multiple_credit_cards`, `airline.too_many_gift_cards`,
//! `airline.basic_economy_flight_change`, `airline.changed_after_cancel`,
//! `airline.too_many_bookings`, `airline.too_many_certificates`.

mod airline;
mod retail;

use anyhow::bail;
use serde::Serialize;
use serde_json::Value;

use crate::env::{Action, Db};

/// One broken rule: a stable id (`retail.order_modified_twice`), the index of the offending
/// action in the trace, and a message written to be quoted back to the model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Violation {
    pub id: &'static str,
    pub step: usize,
    pub message: String,
}

/// The policy document of `domain`, in markdown.
pub fn document(domain: &str) -> anyhow::Result<&'static str> {
    match domain {
        "retail" => Ok(include_str!("../retail/policy.md")),
        "airline" => Ok(include_str!("../airline/policy.md")),
        other => bail!("no policy for domain '{other}' (known: retail, airline)"),
    }
}

/// Every rule of `domain` broken by `trace` when it runs on `initial`, in trace order.
pub fn check(domain: &str, initial: &Db, trace: &[Action]) -> anyhow::Result<Vec<Violation>> {
    let mut found = match domain {
        "retail" => retail::check(initial, trace),
        "airline" => airline::check(initial, trace),
        other => bail!("no policy rules for domain '{other}' (known: retail, airline)"),
    };
    found.sort_by_key(|v| v.step);
    Ok(found)
}

/// Whether the policy lets `second` follow `first` when both act on the same record (the
/// same order or reservation). The API dependency graph keeps only allowed pairs.
pub fn allows_pair(domain: &str, first: &str, second: &str) -> bool {
    let forbidden: &[(&str, &str)] = match domain {
        "retail" => retail::FORBIDDEN_PAIRS,
        "airline" => airline::FORBIDDEN_PAIRS,
        _ => &[],
    };
    !forbidden.contains(&(first, second))
}

/// A string argument of an action.
fn arg<'a>(action: &'a Action, name: &str) -> Option<&'a str> {
    action.kwargs.get(name).and_then(Value::as_str)
}

/// A record of a table in the initial database.
fn record<'a>(db: &'a Db, table: &str, id: &str) -> Option<&'a Value> {
    db.get(table)?.get(id)
}

/// Tracks who the conversation is about: the user identified first, and every action that
/// touches a user's data before anyone was identified, or touches somebody else.
struct Identity {
    user: Option<String>,
    not_authenticated: &'static str,
    wrong_user: &'static str,
}

impl Identity {
    fn new(not_authenticated: &'static str, wrong_user: &'static str) -> Self {
        Self {
            user: None,
            not_authenticated,
            wrong_user,
        }
    }

    /// An identification call found `user`: the first becomes the conversation's user; a
    /// different one later means serving a second person.
    fn identify(&mut self, step: usize, action: &Action, user: &str, out: &mut Vec<Violation>) {
        match &self.user {
            None => self.user = Some(user.to_string()),
            Some(_) => self.touch(step, action, user, out),
        }
    }

    /// `action` reads or changes data of `user`.
    fn touch(&mut self, step: usize, action: &Action, user: &str, out: &mut Vec<Violation>) {
        match &self.user {
            None => out.push(Violation {
                id: self.not_authenticated,
                step,
                message: format!(
                    "{} touches the data of user '{user}' before the user's identity was confirmed; \
                     identify the user first",
                    action.name
                ),
            }),
            Some(known) if known != user => out.push(Violation {
                id: self.wrong_user,
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
            assert!(
                document(d).unwrap().starts_with('#'),
                "{d} policy is a markdown document"
            );
        }
        assert!(document("bank").unwrap_err().to_string().contains("'bank'"));
        assert!(check("bank", &Db::new(), &[]).is_err());
    }
}
