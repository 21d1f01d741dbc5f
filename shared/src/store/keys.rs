//! How items are keyed in the single table. Every key format lives here, so the access patterns
//! can be read in one place:
//!
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | user | `USER#usr` | `USER` | |
//! | external-id claim | `USER_EXT#<external id>` | `USER_EXT` | |
//! | billing account | `ACCOUNT#ba` | `ACCOUNT` | `OWNER#usr` / `ACCOUNT#ba`; gsi2: `RECHARGES#<shard>` / `<epoch>#ba` while an auto-recharge is under way |
//! | ledger transaction | `TXN#txn` (a usage event's: its claim's item) | `TXN` | `WS_TXN#ws#<shard>` / `TXN#txn` (when it has a workspace); gsi3: `TXNS#ba#<shard>` / `TXN#txn` |
//! | ledger transaction written before histories were spread | `ACCOUNT#ba` | `TXN#txn` | `WS_TXN#ws` / `TXN#txn` |
//! | workspace | `WS#ws` | `WS` | `OWNER#usr` / `WS#ws`; gsi2: `DEADLINES#<shard>` / `<epoch>#ws` while a lifecycle date is ahead |
//! | usage-event rate window | `RATE#ws` | `<minute epoch>` | |
//! | agent seen in a workspace | `WS#ws` | `AGENT#<agent id>` | |
//! | billing profile (Stripe customer, method, subscription) | `WS#ws` | `BILLING` | |
//! | checkout session | `CHECKOUT#cs` | `CHECKOUT` | |
//! | Stripe customer → workspace | `CUSTOMER#cus` | `CUSTOMER` | |
//! | invoice mirror | `INVOICE#in` | `INVOICE` | `WS_INVOICES#ws` / `<created epoch>#in` |
//! | Stripe event claim | `STRIPE_EVENT#evt` | `STRIPE_EVENT` | |
//! | refunds taken back for a charge | `CHARGE_REFUNDS#ch` | `REFUNDS` | |
//! | the account a payment credited; a refund reported before it was | `PAYMENT#pi` | `PAYMENT` | |
//! | workspace ↔ account link | `WS#ws` | `LINK#ba` | `ACCOUNT_LINKS#ba` / `WS#ws` |
//! | API key | `KEY#key` | `KEY` | `KEY_OWNER#usr\|ws` / `KEY#key` |
//! | API key by hash (auth) | `KEY_HASH#<sha256>` | `KEY_HASH` | |
//! | idempotency record | `IDEM#<scope>#<key>` | `IDEM` | |
//! | workspace budget (caps, month spend, holds) | `WS#ws` | `BUDGET` | |
//! | usage event claim (its first result; with its ledger transaction's attributes and history keys when it cost anything) | `USAGE_EVENT#ws#<event id>` | `USAGE_EVENT` | as a ledger transaction |
//! | usage count applied (a week, by TTL) | `COUNTED#<pk of the debit's item>` | `COUNTED` | |
//! | usage counter, daily | `WS_USAGE#ws` | `D#<date>#<category>#<agent>` | |
//! | usage counter, monthly | `WS_USAGE#ws` / `ACCOUNT_USAGE#ba` | `M#<month>#<category>` | |
//! | run | `RUN#run` | `RUN` | `RUNS_OPEN#<shard>` / `<expires epoch>#run` while open |
//! | service credit claim | `CREDIT#<scope>#<idempotency key>` | `CREDIT` | |
//! | billing event (outbox; the table's stream publishes it) | `EVT#evt` | `EVT` | |
//! | x402 authorization claim | `X402#<network>#<from>#<nonce>` (lower case) | `X402` | gsi2: `X402_PENDING#<shard>` / `<epoch>#<pk>` while pending |
//! | webhook endpoint | `WS#ws` | `WHE#whe` | |
//! | a workspace's endpoint count | `WS#ws` | `WHE_COUNT` | |
//! | one event's delivery to one endpoint | `WHE#whe` | `EVT#evt` | gsi2: `WEBHOOK_RETRIES#<shard>` / `<epoch>#whe#evt` while an attempt is due |
//! | delivery attempt (log) | `WHE#whe` | `WHD#whd` | |
//!
//! Ids are time-ordered, so sorting by a key that ends in an id sorts by creation time.
//!
//! `<shard>` is one of [`DueIndex::SHARDS`] partitions of a [`DueIndex`], chosen by the item's id.

use crate::domain::calendar::{Day, Month};

pub const PK: &str = "pk";
pub const SK: &str = "sk";
pub const GSI1: &str = "gsi1";
pub const GSI1_PK: &str = "gsi1pk";
pub const GSI1_SK: &str = "gsi1sk";
/// The index of things that fall due (keys only).
pub const GSI2: &str = "gsi2";
/// Account histories.
pub const GSI3: &str = "gsi3";
pub const GSI3_PK: &str = "gsi3pk";
pub const GSI3_SK: &str = "gsi3sk";

pub fn deadline_sk(due_epoch: i64, workspace_id: &str) -> String {
    format!("{due_epoch:012}#{workspace_id}")
}

pub const BILLING_PROFILE_SK: &str = "BILLING";

/// An x402 authorization's claim (its pk is `X402#…`, made by `x402::payload::Payment::claim_key`).
pub const X402_CLAIM_SK: &str = "X402";

pub fn customer(id: &str) -> String {
    format!("CUSTOMER#{id}")
}
pub const CUSTOMER_SK: &str = "CUSTOMER";

pub fn checkout(id: &str) -> String {
    format!("CHECKOUT#{id}")
}
pub const CHECKOUT_SK: &str = "CHECKOUT";

pub fn invoice(id: &str) -> String {
    format!("INVOICE#{id}")
}
pub const INVOICE_SK: &str = "INVOICE";

pub fn workspace_invoices(workspace_id: &str) -> String {
    format!("WS_INVOICES#{workspace_id}")
}

pub fn payment(payment_intent_id: &str) -> String {
    format!("PAYMENT#{payment_intent_id}")
}
pub const PAYMENT_SK: &str = "PAYMENT";

pub fn charge_refunds(charge_id: &str) -> String {
    format!("CHARGE_REFUNDS#{charge_id}")
}
pub const CHARGE_REFUNDS_SK: &str = "REFUNDS";

pub fn stripe_event(id: &str) -> String {
    format!("STRIPE_EVENT#{id}")
}
pub const STRIPE_EVENT_SK: &str = "STRIPE_EVENT";

pub fn rate_window(workspace_id: &str) -> String {
    format!("RATE#{workspace_id}")
}

pub fn agent_sk(agent_id: &str) -> String {
    format!("AGENT#{agent_id}")
}
/// DynamoDB deletes items whose TTL attribute (epoch seconds) has passed.
pub const TTL_ATTRIBUTE: &str = "expires_at_epoch";

pub fn user(id: &str) -> String {
    format!("USER#{id}")
}
pub const USER_SK: &str = "USER";

pub fn user_external(external_id: &str) -> String {
    format!("USER_EXT#{external_id}")
}
pub const USER_EXT_SK: &str = "USER_EXT";

pub fn account(id: &str) -> String {
    format!("ACCOUNT#{id}")
}
pub const ACCOUNT_SK: &str = "ACCOUNT";

pub fn owner(user_id: &str) -> String {
    format!("OWNER#{user_id}")
}

/// A ledger transaction's own item, out of its account's partition (a usage event's
/// transaction is its claim's item instead: see [`usage_event`]).
pub fn transaction(id: &str) -> String {
    format!("TXN#{id}")
}
pub const TRANSACTION_SK: &str = "TXN";

/// A transaction's sort key in a history: newest first is descending.
pub fn transaction_sk(id: &str) -> String {
    format!("TXN#{id}")
}
pub const TRANSACTION_SK_PREFIX: &str = "TXN#";

/// A newest-first ledger history: an account's (on `gsi3`) or a workspace's (on `gsi1`). Each
/// is spread over [`History::SHARDS`] partitions by transaction id, so one busy account's
/// entries don't all land on one index partition.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum History<'a> {
    Account(&'a str),
    Workspace(&'a str),
}

impl History<'_> {
    /// At 1 write unit per entry and 1,000 per partition per second, 16 partitions take one
    /// account's 10,000 debits a second with room to spare.
    pub const SHARDS: u32 = 16;

    /// The index it lives on, and that index's key attributes.
    pub fn index(self) -> (&'static str, &'static str, &'static str) {
        match self {
            Self::Account(_) => (GSI3, GSI3_PK, GSI3_SK),
            Self::Workspace(_) => (GSI1, GSI1_PK, GSI1_SK),
        }
    }

    /// The partition transaction `id` is listed under, e.g. `TXNS#ba_…#07`.
    pub fn partition(self, transaction_id: &str) -> String {
        self.shard(fnv1a(transaction_id.as_bytes()) % Self::SHARDS)
    }

    fn shard(self, shard: u32) -> String {
        match self {
            Self::Account(account) => format!("TXNS#{account}#{shard:02}"),
            Self::Workspace(workspace) => format!("WS_TXN#{workspace}#{shard:02}"),
        }
    }

    /// Every partition a reader merges, with the index it is on (`None`: the table): the
    /// shards, and where entries written before the spread stay (the account's own partition,
    /// the workspace's single index partition).
    pub fn partitions(self) -> Vec<(Option<&'static str>, String)> {
        let (index, _, _) = self.index();
        let legacy = match self {
            Self::Account(account) => (None, self::account(account)),
            Self::Workspace(workspace) => (Some(GSI1), format!("WS_TXN#{workspace}")),
        };
        (0..Self::SHARDS)
            .map(|shard| (Some(index), self.shard(shard)))
            .chain([legacy])
            .collect()
    }
}

pub fn workspace(id: &str) -> String {
    format!("WS#{id}")
}
pub const WORKSPACE_SK: &str = "WS";

pub fn link_sk(account_id: &str) -> String {
    format!("LINK#{account_id}")
}
pub const LINK_SK_PREFIX: &str = "LINK#";

pub fn account_links(account_id: &str) -> String {
    format!("ACCOUNT_LINKS#{account_id}")
}

pub fn api_key(id: &str) -> String {
    format!("KEY#{id}")
}
pub const API_KEY_SK: &str = "KEY";

pub fn key_owner(owner_id: &str) -> String {
    format!("KEY_OWNER#{owner_id}")
}

pub fn key_hash(hash: &str) -> String {
    format!("KEY_HASH#{hash}")
}
pub const KEY_HASH_SK: &str = "KEY_HASH";

pub fn idempotency(scope: &str, key: &str) -> String {
    format!("IDEM#{scope}#{key}")
}
pub const IDEMPOTENCY_SK: &str = "IDEM";

pub const BUDGET_SK: &str = "BUDGET";

pub fn usage_event(workspace_id: &str, event_id: &str) -> String {
    format!("USAGE_EVENT#{workspace_id}#{event_id}")
}
pub const USAGE_EVENT_SK: &str = "USAGE_EVENT";

pub fn workspace_usage(workspace_id: &str) -> String {
    format!("WS_USAGE#{workspace_id}")
}

pub fn account_usage(account_id: &str) -> String {
    format!("ACCOUNT_USAGE#{account_id}")
}

/// Stands for "no agent" in counter keys: empty, which no agent id can be (ids are 1–255
/// characters), so usage without an agent never mixes with any agent's.
pub const NO_AGENT: &str = "";

pub fn daily_usage_sk(day: Day, category: &str, agent: &str) -> String {
    format!("D#{day}#{category}#{agent}")
}

pub fn monthly_usage_sk(month: Month, category: &str) -> String {
    format!("M#{month}#{category}")
}

pub fn run(id: &str) -> String {
    format!("RUN#{id}")
}
pub const RUN_SK: &str = "RUN";

pub fn outbox(id: &str) -> String {
    format!("EVT#{id}")
}
pub const OUTBOX_SK: &str = "EVT";
/// Every outbox item's `pk` starts so: the stream's filter and the local tap match it.
pub const OUTBOX_PK_PREFIX: &str = "EVT#";

pub fn endpoint_sk(id: &str) -> String {
    format!("WHE#{id}")
}
pub const ENDPOINT_SK_PREFIX: &str = "WHE#";
pub const ENDPOINT_COUNT_SK: &str = "WHE_COUNT";

pub fn endpoint(id: &str) -> String {
    format!("WHE#{id}")
}

pub fn delivery_sk(event_id: &str) -> String {
    format!("EVT#{event_id}")
}

pub fn attempt_sk(id: &str) -> String {
    format!("WHD#{id}")
}
pub const ATTEMPT_SK_PREFIX: &str = "WHD#";
pub const CREDIT_CLAIM_SK: &str = "CREDIT";

/// That the usage count recorded on the item keyed `source_pk` was applied to the counters.
pub fn usage_counted(source_pk: &str) -> String {
    format!("COUNTED#{source_pk}")
}
pub const USAGE_COUNTED_SK: &str = "COUNTED";

/// An index of items by when they fall due (sort key `<epoch, 12 digits>#…`), which a job reads
/// for what is due. Each is spread over [`Self::SHARDS`] partitions: one partition taking every
/// write would throttle at scale, and a throttled index throttles the table's writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DueIndex {
    /// Open runs, by hold expiry (on `gsi1`): the expiry sweep.
    OpenRuns,
    /// Workspaces waiting for a lifecycle date, by that date: the lifecycle sweep.
    Deadlines,
    /// Accounts with an auto-recharge under way, by start time: the recharge retry.
    Recharges,
    /// Webhook deliveries with an attempt due (or a claim's lease ending): the retry job.
    WebhookRetries,
    /// Pending x402 claims, by claim time: reconciliation.
    X402Pending,
}

impl DueIndex {
    /// Enough that the busiest index's writes (a run's authorize, captures and settle) stay
    /// far below one partition's limit, few enough that a job's 17 queries stay cheap.
    pub const SHARDS: u32 = 16;

    /// The index (`gsiN`) it lives on.
    pub fn gsi(self) -> &'static str {
        match self {
            Self::OpenRuns => GSI1,
            Self::Deadlines | Self::Recharges | Self::WebhookRetries | Self::X402Pending => GSI2,
        }
    }

    /// The single partition every item was under before sharding (and its shards' prefix).
    pub fn legacy_partition(self) -> &'static str {
        match self {
            Self::OpenRuns => "RUNS_OPEN",
            Self::Deadlines => "DEADLINES",
            Self::Recharges => "RECHARGES",
            Self::WebhookRetries => "WEBHOOK_RETRIES",
            Self::X402Pending => "X402_PENDING",
        }
    }

    /// The partition of the item `id` (its run, workspace, account, delivery or claim), e.g.
    /// `RUNS_OPEN#07`: the same id always lands in the same shard, in every process.
    pub fn partition(self, id: &str) -> String {
        self.shard(shard_of(id))
    }

    fn shard(self, shard: u32) -> String {
        format!("{}#{shard:02}", self.legacy_partition())
    }

    /// Every partition a reader queries: the shards, and the legacy partition, where items
    /// written before sharding stay until they are next written.
    pub fn partitions(self) -> Vec<String> {
        (0..Self::SHARDS)
            .map(|shard| self.shard(shard))
            .chain([self.legacy_partition().to_owned()])
            .collect()
    }
}

/// The shard of `id`: 32-bit FNV-1a, which (unlike std's randomly seeded hasher) is the same in
/// every process and release.
fn shard_of(id: &str) -> u32 {
    fnv1a(id.as_bytes()) % DueIndex::SHARDS
}

fn fnv1a(bytes: &[u8]) -> u32 {
    const OFFSET_BASIS: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    bytes.iter().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u32::from(*byte)).wrapping_mul(PRIME)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a_matches_the_published_test_vectors() {
        // From the FNV reference (draft-eastlake-fnv): a change of hash would move every
        // indexed item to another shard.
        assert_eq!(fnv1a(b""), 0x811c_9dc5);
        assert_eq!(fnv1a(b"a"), 0xe40c_292c);
        assert_eq!(fnv1a(b"foobar"), 0xbf9c_f968);
    }

    #[test]
    fn an_id_keeps_its_shard() {
        assert_eq!(DueIndex::OpenRuns.partition("a"), "RUNS_OPEN#12");
        assert_eq!(DueIndex::Deadlines.partition("foobar"), "DEADLINES#08");
        let id = "run_01HZX3A9Q6Y0000000000000";
        assert_eq!(
            DueIndex::Recharges.partition(id),
            DueIndex::Recharges.partition(id)
        );
    }

    #[test]
    fn every_partition_is_one_of_the_shards_a_reader_queries() {
        let readable = DueIndex::WebhookRetries.partitions();
        assert_eq!(readable.len(), DueIndex::SHARDS as usize + 1);
        assert!(readable.contains(&"WEBHOOK_RETRIES".to_owned()));
        for i in 0..1000 {
            let partition = DueIndex::WebhookRetries.partition(&format!("whe_{i}#evt_{i}"));
            assert!(readable.contains(&partition), "{partition}");
        }
    }

    #[test]
    fn ids_made_one_after_another_spread_over_every_shard() {
        // Ids made in a row share all but their last characters: the hash must still spread
        // them, or one shard takes the writes again.
        let mut per_shard = [0usize; DueIndex::SHARDS as usize];
        for i in 0..1600 {
            per_shard[shard_of(&format!("run_01HZX3A9Q6{i:016}")) as usize] += 1;
        }
        let (fewest, most) = (per_shard.iter().min(), per_shard.iter().max());
        assert!(
            fewest >= Some(&60) && most <= Some(&140),
            "100 expected in each: {per_shard:?}"
        );
    }

    #[test]
    fn a_history_is_read_from_its_shards_and_where_entries_were_before() {
        let account = History::Account("ba_1");
        let partitions = account.partitions();
        assert_eq!(partitions.len(), History::SHARDS as usize + 1);
        assert_eq!(
            partitions.last(),
            Some(&(None, "ACCOUNT#ba_1".to_owned())),
            "the account's own partition, on the table"
        );
        assert_eq!(
            History::Workspace("ws_1").partitions().last(),
            Some(&(Some(GSI1), "WS_TXN#ws_1".to_owned())),
            "the workspace's single index partition"
        );
        let mut used = std::collections::HashSet::new();
        for i in 0..200 {
            let partition = account.partition(&format!("txn_01HZX3A9Q6{i:016}"));
            assert!(
                partitions.contains(&(Some(GSI3), partition.clone())),
                "{partition}"
            );
            used.insert(partition);
        }
        assert_eq!(
            used.len(),
            History::SHARDS as usize,
            "entries in a row use every shard"
        );
    }
}
