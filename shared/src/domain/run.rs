//! Agent runs: authorized with a hold, usage captured against it, settled once.

use super::bounds::{add_kept_count, OutOfRange};
use super::ids::{BillingAccountId, RunId, TransactionId, WorkspaceId};
use super::pricing::{round_up_to_cents, Category, Tier};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Authorized,
    Completed,
    /// Not completed by `expires_at`: settled by the sweep for what was reported.
    Expired,
}

/// How a run was settled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Settlement {
    pub cost_cents: i64,
    pub released_cents: i64,
    pub balance_after_cents: i64,
    pub transaction_id: Option<TransactionId>,
    pub settled_at: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Run {
    pub run_id: RunId,
    pub workspace_id: WorkspaceId,
    pub billing_account_id: BillingAccountId,
    pub agent_id: String,
    pub agent_tier: String,
    pub status: RunStatus,
    pub max_cost_cents: i64,
    /// What is set aside now; grows when usage outruns it and credit allows.
    pub hold_cents: i64,
    /// Exact cost of the usage captured so far, in micro-cents.
    pub captured_micros: u64,
    /// `captured_micros` rounded up: what settling now would cost.
    pub captured_cost_cents: i64,
    pub usage: BTreeMap<Category, u64>,
    /// The highest `sequence` applied; lower or equal ones are retries and change nothing.
    pub last_sequence: i64,
    pub expires_at: String,
    pub created_at: String,
    pub settlement: Option<Settlement>,
}

/// Usage reported for a run (incrementally or at completion).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RunUsage {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub actions: u64,
}

impl RunUsage {
    pub fn by_category(&self) -> [(Category, u64); 3] {
        [
            (Category::InputTokens, self.input_tokens),
            (Category::OutputTokens, self.output_tokens),
            (Category::Actions, self.actions),
        ]
    }
}

impl Run {
    /// The run with `usage` added (priced at its tier), not yet checked against its hold; or
    /// which of its totals would leave its range.
    pub fn with_usage(&self, tier: &Tier, usage: &RunUsage) -> Result<Run, OutOfRange> {
        let mut next = self.clone();
        for (category, quantity) in usage.by_category() {
            if quantity == 0 {
                continue;
            }
            let total = next.usage.entry(category).or_default();
            *total = add_kept_count(category.as_str(), *total, quantity)?;
            let micros = u64::try_from(tier.cost_micros(category, quantity))
                .map_err(|_| OutOfRange("captured_micros"))?;
            next.captured_micros = add_kept_count("captured_micros", next.captured_micros, micros)?;
        }
        next.captured_cost_cents = round_up_to_cents(u128::from(next.captured_micros));
        Ok(next)
    }

    /// The exact cost per category of what was captured, for the usage counters.
    pub fn cost_micros_by_category(&self, tier: &Tier) -> Vec<(Category, u128)> {
        self.usage
            .iter()
            .map(|(category, quantity)| (*category, tier.cost_micros(*category, *quantity)))
            .collect()
    }
}

/// Splits `total_cents` over parts in proportion to their exact micro-cent costs, by largest
/// remainder, so the parts are whole cents that add up to exactly `total_cents`.
pub fn allocate_cents(total_cents: i64, parts: &[(Category, u128)]) -> Vec<(Category, i64)> {
    let weight: u128 = parts.iter().map(|(_, micros)| micros).sum();
    if weight == 0 || total_cents <= 0 {
        return parts.iter().map(|(c, _)| (*c, 0)).collect();
    }
    let total = u128::try_from(total_cents).unwrap_or(0);
    let mut shares: Vec<(Category, u128, u128)> = parts
        .iter()
        .map(|(category, micros)| {
            let exact = total * micros;
            (*category, exact / weight, exact % weight)
        })
        .collect();
    let assigned: u128 = shares.iter().map(|(_, cents, _)| cents).sum();
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by(|a, b| shares[*b].2.cmp(&shares[*a].2));
    for index in order
        .into_iter()
        .take(usize::try_from(total - assigned).unwrap_or(0))
    {
        shares[index].1 += 1;
    }
    shares
        .into_iter()
        .map(|(category, cents, _)| (category, i64::try_from(cents).unwrap_or(i64::MAX)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_that_would_take_a_run_total_out_of_range_is_refused() {
        let tier = Tier {
            id: "t".into(),
            prices: Category::ALL.iter().map(|c| (*c, 0)).collect(),
        };
        let run = Run {
            run_id: RunId::generate(1),
            workspace_id: WorkspaceId::generate(1),
            billing_account_id: BillingAccountId::generate(1),
            agent_id: "a".into(),
            agent_tier: "t".into(),
            status: RunStatus::Authorized,
            max_cost_cents: 1,
            hold_cents: 1,
            captured_micros: 0,
            captured_cost_cents: 0,
            usage: [(Category::Actions, u64::try_from(i64::MAX).unwrap() - 1)].into(),
            last_sequence: 0,
            expires_at: String::new(),
            created_at: String::new(),
            settlement: None,
        };
        let one = RunUsage {
            actions: 1,
            ..Default::default()
        };
        let full = run.with_usage(&tier, &one).unwrap();
        assert_eq!(
            full.with_usage(&tier, &one),
            Err(OutOfRange("actions")),
            "free actions still count, and their total stays an i64"
        );
    }

    #[test]
    fn allocation_adds_up_to_the_total_and_follows_the_weights() {
        let parts = [
            (Category::InputTokens, 1_500_000),
            (Category::OutputTokens, 1_500_000),
            (Category::Actions, 1_000_000),
        ];
        let split = allocate_cents(5, &parts);
        assert_eq!(split.iter().map(|(_, c)| c).sum::<i64>(), 5);
        assert!(split[2].1 <= split[0].1);
        assert_eq!(
            allocate_cents(0, &parts)
                .iter()
                .map(|(_, c)| c)
                .sum::<i64>(),
            0
        );
        assert_eq!(
            allocate_cents(3, &[(Category::Actions, 0)]),
            vec![(Category::Actions, 0)]
        );
    }
}
