//! Budgets of model calls (SPEC TS-5, GW-5): reserve before the call,
//! settle after.
//!
//! Each budget is an account: what was spent (from the database, plus what
//! this host settled since) and what calls in flight reserved. A call is
//! admitted when every budget it counts against has room for its
//! reservation, or, when no other call of that budget is in flight, when
//! something is left at all. So the spend recorded can pass a budget by at
//! most the one call admitted last, and only by what it used beyond its
//! reservation plus what was left.
//!
//! Accounts live in memory on each host and are refreshed from the database
//! every few seconds; several hosts on one PostgreSQL can each admit their
//! one last call.

use crate::error::{Budget, Error, Result};
use crate::sync::Unpoisoned as _;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long an account's spend from the database is trusted.
const FRESH: Duration = Duration::from_secs(2);

/// Accounts untouched for this long are dropped.
const IDLE: Duration = Duration::from_secs(3 * 3600);

/// Which budget.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Account {
    /// A workspace's hour (`now / 1 h`): its hourly budgets.
    Hour {
        /// Workspace.
        workspace: String,
        /// Hours since the epoch.
        hour: i64,
    },
    /// A task: its own budgets.
    Task {
        /// Workspace.
        workspace: String,
        /// Task id.
        id: String,
    },
}

impl Account {
    /// Its budget of `measure` (`cost`, `token`), as errors name it.
    fn budget(&self, measure: &'static str) -> Budget {
        match self {
            Account::Hour { workspace, .. } => Budget::Hourly {
                workspace: workspace.clone(),
                measure,
            },
            Account::Task { id, .. } => Budget::Task {
                task: id.clone(),
                measure,
            },
        }
    }
}

/// The limits of one account (None: unlimited).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Micro-dollars.
    pub cost_micros: Option<i64>,
    /// Tokens.
    pub tokens: Option<i64>,
}

impl Limits {
    /// True when there is no limit at all.
    pub fn is_none(&self) -> bool {
        self.cost_micros.is_none() && self.tokens.is_none()
    }
}

/// Cost and tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Amount {
    /// Micro-dollars.
    pub cost_micros: i64,
    /// Tokens.
    pub tokens: i64,
}

#[derive(Debug)]
struct Entry {
    spent: Amount,
    reserved: Amount,
    in_flight: u32,
    refreshed: Option<Instant>,
    touched: Instant,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            spent: Amount::default(),
            reserved: Amount::default(),
            in_flight: 0,
            refreshed: None,
            touched: Instant::now(),
        }
    }
}

/// Every account of this host.
#[derive(Default)]
pub struct Ledger {
    accounts: Mutex<HashMap<Account, Entry>>,
}

/// A call's reservation. Dropped without [`Reservation::settle`] (the
/// client went away), it is released with nothing spent.
pub struct Reservation {
    ledger: Arc<Ledger>,
    accounts: Vec<Account>,
    amount: Amount,
    settled: bool,
}

impl Reservation {
    /// Releases the reservation and books what the call really used.
    pub fn settle(mut self, used: Amount) {
        self.ledger.release(&self.accounts, self.amount, used);
        self.settled = true;
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.settled {
            self.ledger
                .release(&self.accounts, self.amount, Amount::default());
        }
    }
}

impl Ledger {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Account, Entry>> {
        self.accounts.locked()
    }

    /// True when the account's spend should be read from the database.
    pub fn stale(&self, account: &Account) -> bool {
        self.lock()
            .get(account)
            .and_then(|e| e.refreshed)
            .is_none_or(|at| at.elapsed() > FRESH)
    }

    /// Takes the database's spend. What this host settled and the
    /// database does not show yet is kept (the larger of the two wins).
    pub fn refresh(&self, account: &Account, spent: Amount) {
        let mut accounts = self.lock();
        let e = accounts.entry(account.clone()).or_insert_with(Entry::new);
        e.spent.cost_micros = e.spent.cost_micros.max(spent.cost_micros);
        e.spent.tokens = e.spent.tokens.max(spent.tokens);
        e.refreshed = Some(Instant::now());
        e.touched = Instant::now();
    }

    /// What is left of each limit, after spend and reservations (None
    /// where unlimited).
    pub fn left(&self, account: &Account, limits: Limits) -> Left {
        let accounts = self.lock();
        let (spent, reserved) = accounts
            .get(account)
            .map(|e| (e.spent, e.reserved))
            .unwrap_or_default();
        // Saturating throughout: figures near the 64-bit limit (a huge
        // reservation, a counter that reached it) must not wrap.
        Left {
            cost_micros: limits.cost_micros.map(|l| {
                l.saturating_sub(spent.cost_micros)
                    .saturating_sub(reserved.cost_micros)
                    .max(0)
            }),
            tokens: limits.tokens.map(|l| {
                l.saturating_sub(spent.tokens)
                    .saturating_sub(reserved.tokens)
                    .max(0)
            }),
        }
    }

    /// Reserves `amount` on every account, or on none: the error names the
    /// budget that refused, [`Error::BudgetSpent`] when it is spent.
    pub fn reserve(
        self: &Arc<Self>,
        budgets: &[(Account, Limits)],
        amount: Amount,
    ) -> Result<Reservation> {
        let mut accounts = self.lock();
        for (account, limits) in budgets {
            let e = accounts.entry(account.clone()).or_insert_with(Entry::new);
            e.touched = Instant::now();
            for (what, limit, spent, reserved, wants) in [
                (
                    "cost",
                    limits.cost_micros,
                    e.spent.cost_micros,
                    e.reserved.cost_micros,
                    amount.cost_micros,
                ),
                (
                    "token",
                    limits.tokens,
                    e.spent.tokens,
                    e.reserved.tokens,
                    amount.tokens,
                ),
            ] {
                let Some(limit) = limit else { continue };
                let budget = account.budget(what);
                let show = |v: i64| {
                    if what == "cost" {
                        format!("${:.4}", v as f64 / 1e6)
                    } else {
                        format!("{v} tokens")
                    }
                };
                if spent >= limit {
                    return Err(Error::BudgetSpent {
                        budget,
                        figures: format!(": {} of {}", show(spent), show(limit)),
                    });
                }
                if e.in_flight > 0 && spent.saturating_add(reserved).saturating_add(wants) > limit {
                    return Err(Error::ResourceExhausted(format!(
                        "{budget} has no room for this call: {} spent and {} reserved by {} call(s) in flight, of {}; retry when they finish",
                        show(spent),
                        show(reserved),
                        e.in_flight,
                        show(limit)
                    )));
                }
            }
        }
        let mut reserved = Vec::with_capacity(budgets.len());
        for (account, _) in budgets {
            if let Some(e) = accounts.get_mut(account) {
                e.reserved.cost_micros = e.reserved.cost_micros.saturating_add(amount.cost_micros);
                e.reserved.tokens = e.reserved.tokens.saturating_add(amount.tokens);
                e.in_flight += 1;
                reserved.push(account.clone());
            }
        }
        Ok(Reservation {
            ledger: self.clone(),
            accounts: reserved,
            amount,
            settled: false,
        })
    }

    fn release(&self, accounts_of: &[Account], reserved: Amount, used: Amount) {
        let mut accounts = self.lock();
        for account in accounts_of {
            let e = accounts.entry(account.clone()).or_insert_with(Entry::new);
            e.reserved.cost_micros = e
                .reserved
                .cost_micros
                .saturating_sub(reserved.cost_micros)
                .max(0);
            e.reserved.tokens = e.reserved.tokens.saturating_sub(reserved.tokens).max(0);
            e.in_flight = e.in_flight.saturating_sub(1);
            e.spent.cost_micros = e.spent.cost_micros.saturating_add(used.cost_micros.max(0));
            e.spent.tokens = e.spent.tokens.saturating_add(used.tokens.max(0));
            e.touched = Instant::now();
        }
    }

    /// Drops accounts nobody used for hours (past hours, finished tasks).
    pub fn prune(&self) {
        self.lock()
            .retain(|_, e| e.in_flight > 0 || e.touched.elapsed() < IDLE);
    }
}

/// What is left of a budget's limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Left {
    /// Micro-dollars left, when limited.
    pub cost_micros: Option<i64>,
    /// Tokens left, when limited.
    pub tokens: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hour() -> Account {
        Account::Hour {
            workspace: "ws".to_string(),
            hour: 1,
        }
    }

    fn cost(limit: i64) -> Limits {
        Limits {
            cost_micros: Some(limit),
            tokens: None,
        }
    }

    fn amount(cost_micros: i64) -> Amount {
        Amount {
            cost_micros,
            tokens: 10,
        }
    }

    #[test]
    fn reservations_hold_room_and_settle_books_the_real_use() {
        let ledger = Arc::new(Ledger::default());
        let budgets = [(hour(), cost(1_000))];
        let a = ledger.reserve(&budgets, amount(400)).unwrap();
        let b = ledger.reserve(&budgets, amount(400)).unwrap();
        // 800 reserved: a third would pass the limit while two are in flight.
        let err = ledger.reserve(&budgets, amount(400)).err().unwrap();
        let err = err.to_string();
        assert!(
            err.contains("the hourly cost budget of workspace \"ws\" has no room"),
            "{err}"
        );
        assert_eq!(ledger.left(&hour(), cost(1_000)).cost_micros, Some(200));
        a.settle(amount(300));
        drop(b); // the client went away: released, nothing booked
        assert_eq!(ledger.left(&hour(), cost(1_000)).cost_micros, Some(700));
        // Alone, a call is admitted while anything is left, even if its
        // reservation is larger: the one call that may pass the budget.
        let c = ledger.reserve(&budgets, amount(900)).unwrap();
        c.settle(amount(900));
        let err = ledger.reserve(&budgets, amount(1)).err().unwrap();
        assert_eq!(
            err.to_string(),
            "the hourly cost budget of workspace \"ws\" is spent: $0.0012 of $0.0010"
        );
    }

    #[test]
    fn all_or_nothing_across_budgets() {
        let ledger = Arc::new(Ledger::default());
        let task = Account::Task {
            workspace: "ws".to_string(),
            id: "t1".to_string(),
        };
        ledger.refresh(
            &task,
            Amount {
                cost_micros: 0,
                tokens: 100,
            },
        );
        let budgets = [
            (hour(), cost(1_000)),
            (
                task.clone(),
                Limits {
                    cost_micros: None,
                    tokens: Some(100),
                },
            ),
        ];
        let err = ledger.reserve(&budgets, amount(1)).err().unwrap();
        assert_eq!(
            err.to_string(),
            "the token budget of task t1 is spent: 100 tokens of 100 tokens"
        );
        assert!(
            matches!(&err, Error::BudgetSpent { budget: Budget::Task { task, measure: "token" }, .. } if task == "t1"),
            "{err:?}"
        );
        // Nothing was reserved on the hour.
        assert_eq!(ledger.left(&hour(), cost(1_000)).cost_micros, Some(1_000));
    }

    #[test]
    fn refresh_keeps_the_larger_spend() {
        let ledger = Arc::new(Ledger::default());
        assert!(ledger.stale(&hour()));
        ledger.refresh(&hour(), amount(100));
        assert!(!ledger.stale(&hour()));
        ledger
            .reserve(&[(hour(), cost(1_000))], amount(50))
            .unwrap()
            .settle(amount(50));
        // The database has not seen this host's 50 yet.
        ledger.refresh(&hour(), amount(100));
        assert_eq!(ledger.left(&hour(), cost(1_000)).cost_micros, Some(850));
        // Another host spent more.
        ledger.refresh(&hour(), amount(600));
        assert_eq!(ledger.left(&hour(), cost(1_000)).cost_micros, Some(400));
    }
}
