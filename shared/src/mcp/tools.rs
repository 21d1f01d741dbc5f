//! The three billing tools: their definitions (`tools/list`, in this order) and their
//! arguments, read into types. What they answer is the billing views' and the run
//! authorization's own code (`api::mcp`).

use serde_json::{json, Map, Value};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tool {
    GetBillingStatus,
    GetUsage,
    CheckBudget,
}

/// A tool call's arguments, checked against its `inputSchema`.
#[derive(Clone, Debug, PartialEq)]
pub enum Call {
    BillingStatus {
        workspace_id: Option<String>,
    },
    Usage {
        workspace_id: Option<String>,
        category: String,
        period_start: Option<String>,
        period_end: Option<String>,
        group_by: Option<String>,
    },
    CheckBudget {
        workspace_id: Option<String>,
        amount_cents: i64,
        agent_id: Option<String>,
    },
}

/// Arguments the schema refuses: a tool error `invalid_request` with this message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadArguments(pub String);

const CATEGORIES: [&str; 5] = [
    "input_tokens",
    "output_tokens",
    "actions",
    "api_calls",
    "agent_invocations",
];

impl Tool {
    pub const ALL: [Tool; 3] = [Tool::GetBillingStatus, Tool::GetUsage, Tool::CheckBudget];

    pub fn name(self) -> &'static str {
        match self {
            Tool::GetBillingStatus => "get_billing_status",
            Tool::GetUsage => "get_usage",
            Tool::CheckBudget => "check_budget",
        }
    }

    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.name() == name)
    }

    /// Its `tools/list` entry.
    pub fn definition(self) -> Value {
        let workspace = json!({"type": "string", "description": "The workspace (`ws_…`); a workspace key's own by default, required with a user or service key."});
        let (description, properties, required, output) = match self {
            Tool::GetBillingStatus => (
                "The workspace's billing status, as GET /v1/workspaces/{id}/billing: plan and its status, balance and available credit, caps and whether agents may run.",
                json!({"workspace_id": workspace}),
                json!([]),
                json!({
                    "type": "object",
                    "properties": {
                        "workspace_id": {"type": "string"},
                        "plan_status": {"type": "string"},
                        "balance_cents": {"type": "integer"},
                        "available_cents": {"type": "integer"},
                        "soft_cap_reached": {"type": "boolean"},
                        "hard_cap_reached": {"type": "boolean"},
                        "can_run_agents": {"type": "boolean"},
                    },
                    "required": ["workspace_id", "plan_status", "balance_cents", "available_cents", "soft_cap_reached", "hard_cap_reached", "can_run_agents"],
                }),
            ),
            Tool::GetUsage => (
                "Usage of one category in a period (default: this calendar month, UTC), as GET /v1/workspaces/{id}/billing/usage, optionally grouped by day or agent.",
                json!({
                    "category": {"type": "string", "enum": CATEGORIES},
                    "period_start": {"type": "string", "format": "date"},
                    "period_end": {"type": "string", "format": "date"},
                    "group_by": {"type": "string", "enum": ["day", "agent"]},
                    "workspace_id": workspace,
                }),
                json!(["category"]),
                json!({
                    "type": "object",
                    "properties": {
                        "category": {"type": "string"},
                        "period_start": {"type": "string"},
                        "period_end": {"type": "string"},
                        "quantity": {"type": "integer"},
                        "cost_cents": {"type": "integer"},
                        "groups": {"type": "array"},
                    },
                    "required": ["category", "period_start", "period_end", "quantity", "cost_cents", "groups"],
                }),
            ),
            Tool::CheckBudget => (
                "Whether an agent run holding `amount_cents` would be authorized now (concurrency limits aside), and if not why: the code POST /v1/workspaces/{id}/runs would answer.",
                json!({
                    "amount_cents": {"type": "integer", "minimum": 0},
                    "agent_id": {"type": "string"},
                    "workspace_id": workspace,
                }),
                json!(["amount_cents"]),
                json!({
                    "type": "object",
                    "properties": {
                        "workspace_id": {"type": "string"},
                        "amount_cents": {"type": "integer"},
                        "allowed": {"type": "boolean"},
                        "reason": {"type": ["string", "null"]},
                        "available_cents": {"type": "integer"},
                        "spendable_cents": {"type": "integer"},
                        "soft_cap_reached": {"type": "boolean"},
                        "hard_cap_cents": {"type": ["integer", "null"]},
                        "plan_status": {"type": "string"},
                    },
                    "required": ["workspace_id", "amount_cents", "allowed", "reason", "available_cents", "spendable_cents", "soft_cap_reached", "hard_cap_cents", "plan_status"],
                }),
            ),
        };
        let mut input = json!({
            "type": "object",
            "properties": properties,
            "additionalProperties": false,
        });
        if required.as_array().is_some_and(|r| !r.is_empty()) {
            input["required"] = required;
        }
        json!({
            "name": self.name(),
            "description": description,
            "inputSchema": input,
            "outputSchema": output,
            "annotations": {"readOnlyHint": true, "idempotentHint": true, "openWorldHint": false},
        })
    }

    /// Reads `arguments` (absent: none) by the tool's `inputSchema`.
    pub fn arguments(self, arguments: Option<&Value>) -> Result<Call, BadArguments> {
        let empty = Map::new();
        let args = match arguments {
            None | Some(Value::Null) => &empty,
            Some(Value::Object(args)) => args,
            Some(_) => return Err(BadArguments("`arguments` must be an object".into())),
        };
        let known: &[&str] = match self {
            Tool::GetBillingStatus => &["workspace_id"],
            Tool::GetUsage => &[
                "category",
                "period_start",
                "period_end",
                "group_by",
                "workspace_id",
            ],
            Tool::CheckBudget => &["amount_cents", "agent_id", "workspace_id"],
        };
        if let Some(unknown) = args.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(BadArguments(format!("unknown argument `{unknown}`")));
        }
        let text = |name: &str| -> Result<Option<String>, BadArguments> {
            match args.get(name) {
                None => Ok(None),
                Some(Value::String(text)) => Ok(Some(text.clone())),
                Some(_) => Err(BadArguments(format!("`{name}` must be a string"))),
            }
        };
        let workspace_id = text("workspace_id")?;
        Ok(match self {
            Tool::GetBillingStatus => Call::BillingStatus { workspace_id },
            Tool::GetUsage => Call::Usage {
                workspace_id,
                category: text("category")?
                    .ok_or_else(|| BadArguments("`category` is required".into()))?,
                period_start: text("period_start")?,
                period_end: text("period_end")?,
                group_by: text("group_by")?,
            },
            Tool::CheckBudget => Call::CheckBudget {
                workspace_id,
                amount_cents: match args.get("amount_cents") {
                    None => return Err(BadArguments("`amount_cents` is required".into())),
                    Some(value) => value.as_i64().filter(|c| *c >= 0).ok_or_else(|| {
                        BadArguments("`amount_cents` must be an integer, 0 or more".into())
                    })?,
                },
                agent_id: text("agent_id")?,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arguments_are_read_by_the_input_schema() {
        assert_eq!(
            Tool::CheckBudget.arguments(Some(&json!({"amount_cents": 5}))),
            Ok(Call::CheckBudget {
                workspace_id: None,
                amount_cents: 5,
                agent_id: None
            })
        );
        assert!(Tool::CheckBudget
            .arguments(Some(&json!({"amount_cents": -1})))
            .is_err());
        assert!(Tool::CheckBudget
            .arguments(Some(&json!({"amount_cents": 1.5})))
            .is_err());
        assert!(Tool::CheckBudget.arguments(None).is_err());
        assert!(Tool::GetBillingStatus
            .arguments(Some(&json!({"colour": 1})))
            .is_err());
        assert!(Tool::GetUsage.arguments(Some(&json!({}))).is_err());
        let names: Vec<_> = Tool::ALL.map(|t| t.definition()["name"].clone()).into();
        assert_eq!(names, ["get_billing_status", "get_usage", "check_budget"]);
    }
}
