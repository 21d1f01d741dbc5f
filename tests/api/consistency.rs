//! The route table, the function binaries, `template.yaml` and the OpenAPI document must agree
//! in every direction: a route without a Lambda, a Lambda without a route, or a path that differs
//! anywhere fails here.

use billing_core::routes::{Invocation, JOBS, ROUTES};
use billing_tests::app::spawn_app;
use http::{Method, StatusCode};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// (name, METHOD, path) per route.
fn route_table() -> BTreeSet<(String, String, String)> {
    ROUTES
        .iter()
        .map(|r| (r.name.to_owned(), r.method.to_string(), r.path.to_owned()))
        .collect()
}

/// (name, method API Gateway routes, path) per route: `ANY` for a route that answers every
/// method itself (MCP's 405).
fn gateway_table() -> BTreeSet<(String, String, String)> {
    ROUTES
        .iter()
        .map(|r| {
            (
                r.name.to_owned(),
                r.gateway_method().to_owned(),
                r.path.to_owned(),
            )
        })
        .collect()
}

/// Every function: one per route and one per scheduled job.
fn function_names() -> BTreeSet<String> {
    ROUTES
        .iter()
        .map(|r| r.name.to_owned())
        .chain(JOBS.iter().map(|j| j.name.to_owned()))
        .collect()
}

fn pascal_case(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .unwrap()
                .to_uppercase()
                .chain(chars)
                .collect::<String>()
        })
        .collect()
}

#[test]
fn every_route_has_exactly_one_function_directory_and_binary() {
    let root = workspace_root().join("functions");
    let directories: BTreeSet<String> = std::fs::read_dir(&root)
        .unwrap()
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        directories,
        function_names(),
        "functions/ directories vs route table"
    );

    let manifest: toml::Table = std::fs::read_to_string(root.join("Cargo.toml"))
        .unwrap()
        .parse()
        .unwrap();
    let bins: Vec<(String, String)> = manifest["bin"]
        .as_array()
        .unwrap()
        .iter()
        .map(|bin| {
            (
                bin["name"].as_str().unwrap().to_owned(),
                bin["path"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let bin_names: BTreeSet<String> = bins.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(
        bin_names,
        function_names(),
        "functions/Cargo.toml [[bin]] vs route table"
    );
    for (name, path) in bins {
        assert_eq!(path, format!("{name}/main.rs"));
        let source = std::fs::read_to_string(root.join(&path)).unwrap();
        // The binary names its own route's or job's `static`, so it links only that code.
        let ident = name.to_uppercase().replace('-', "_");
        assert!(
            source.contains(&format!("serve(&billing_core::routes::{ident})"))
                || source.contains(&format!("serve_job(&billing_core::routes::{ident})")),
            "functions/{path} must serve its own route or job (`routes::{ident}`)"
        );
    }
}

#[test]
fn template_functions_match_the_route_table_both_ways() {
    let template: serde_yaml::Value = serde_yaml::from_str(
        &std::fs::read_to_string(workspace_root().join("template.yaml")).unwrap(),
    )
    .unwrap();
    let resources = template["Resources"].as_mapping().unwrap();
    let mut declared = BTreeSet::new();
    let mut scheduled = BTreeSet::new();
    for (logical_id, resource) in resources {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        // Its code is the zip `make package` builds for the binary of the same name.
        let code = resource["Properties"]["CodeUri"].as_str().unwrap();
        let binary = code
            .strip_prefix("target/lambda/")
            .and_then(|rest| rest.strip_suffix("/bootstrap.zip"))
            .unwrap_or_else(|| panic!("{logical_id:?}: CodeUri {code} is not a packaged zip"))
            .to_owned();
        assert_eq!(
            logical_id.as_str().unwrap(),
            format!("{}Function", pascal_case(&binary)),
            "logical id of {binary}"
        );
        // A job that only one-time schedules invoke has no event of its own.
        let Some(events) = resource["Properties"]["Events"].as_mapping() else {
            scheduled.insert((binary, None));
            continue;
        };
        assert_eq!(events.len(), 1, "{binary} has one event");
        let api = &resource["Properties"]["Events"]["Api"];
        let schedule = &resource["Properties"]["Events"]["Schedule"];
        let stream = &resource["Properties"]["Events"]["Stream"];
        let bus = &resource["Properties"]["Events"]["Bus"];
        if stream.is_mapping() {
            assert_eq!(stream["Type"].as_str(), Some("DynamoDB"), "{binary}");
            assert_eq!(
                stream["Properties"]["FunctionResponseTypes"][0].as_str(),
                Some("ReportBatchItemFailures"),
                "{binary} reports partial batch failures"
            );
            scheduled.insert((binary, Some("stream".to_owned())));
        } else if bus.is_mapping() {
            assert_eq!(bus["Type"].as_str(), Some("EventBridgeRule"), "{binary}");
            assert_eq!(
                bus["Properties"]["Pattern"]["source"][0].as_str(),
                Some(billing_core::events::publish::SOURCE)
            );
            scheduled.insert((binary, Some("bus".to_owned())));
        } else if api.is_mapping() {
            assert_eq!(api["Type"].as_str(), Some("HttpApi"));
            let api = &api["Properties"];
            declared.insert((
                binary,
                api["Method"].as_str().unwrap().to_uppercase(),
                api["Path"].as_str().unwrap().to_owned(),
            ));
        } else {
            assert_eq!(schedule["Type"].as_str(), Some("ScheduleV2"), "{binary}");
            scheduled.insert((
                binary,
                Some(
                    schedule["Properties"]["ScheduleExpression"]
                        .as_str()
                        .unwrap()
                        .to_owned(),
                ),
            ));
        }
    }
    let jobs: BTreeSet<(String, Option<String>)> = JOBS
        .iter()
        .map(|j| {
            let trigger = match j.invoked_by {
                Invocation::Schedule(expression) => Some(expression.to_owned()),
                Invocation::OneTimeSchedule => None,
                Invocation::TableStream => Some("stream".to_owned()),
                Invocation::BusRule => Some("bus".to_owned()),
            };
            (j.name.to_owned(), trigger)
        })
        .collect();
    assert_eq!(scheduled, jobs, "template.yaml schedules vs job table");
    assert_eq!(declared, gateway_table(), "template.yaml vs route table");
    let globals = &template["Globals"]["Function"];
    assert_eq!(globals["Runtime"].as_str(), Some("provided.al2023"));
    assert_eq!(globals["Architectures"][0].as_str(), Some("arm64"));
}

#[tokio::test]
async fn the_served_openapi_document_lists_every_route_and_nothing_else() {
    let app = spawn_app().await;
    let document = app.call(Method::GET, "/v1/openapi.json").send().await;
    assert_eq!(document.status, StatusCode::OK);
    assert_eq!(document.body["openapi"], "3.1.0");
    let mut operations = BTreeSet::new();
    for (path, item) in document.body["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            operations.insert((
                operation["operationId"].as_str().unwrap().to_owned(),
                method.to_uppercase(),
                path.clone(),
            ));
            assert!(
                operation["responses"]["default"].is_object(),
                "{path} documents errors"
            );
        }
    }
    assert_eq!(operations, route_table(), "OpenAPI vs route table");
    // Every schema reference resolves.
    let text = document.body.to_string();
    let schemas = document.body["components"]["schemas"].as_object().unwrap();
    for reference in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
        let name = reference.split('"').next().unwrap();
        assert!(schemas.contains_key(name), "unresolved schema {name}");
    }
    let create_user = &document.body["paths"]["/v1/users"]["post"];
    assert!(create_user["requestBody"].is_object());
    assert!(create_user["responses"]["201"].is_object());
}
