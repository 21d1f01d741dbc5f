//! The table's definition, read from `template.yaml`, so DynamoDB Local (dev server and tests) gets
//! exactly the keys, indexes, stream and TTL that the deployed stack has.

use super::{Store, StoreError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, StreamSpecification, StreamViewType, TimeToLiveSpecification,
};
use serde::Deserialize;

const TEMPLATE: &str = include_str!("../../../template.yaml");

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TableDefinition {
    pub attribute_definitions: Vec<AttributeDef>,
    pub key_schema: Vec<KeyDef>,
    #[serde(default)]
    pub global_secondary_indexes: Vec<IndexDef>,
    pub stream_specification: Option<StreamDef>,
    pub time_to_live_specification: Option<TtlDef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AttributeDef {
    pub attribute_name: String,
    pub attribute_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct KeyDef {
    pub attribute_name: String,
    pub key_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct IndexDef {
    pub index_name: String,
    pub key_schema: Vec<KeyDef>,
    pub projection: ProjectionDef,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct ProjectionDef {
    pub projection_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StreamDef {
    pub stream_view_type: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TtlDef {
    pub attribute_name: String,
    pub enabled: bool,
}

/// The `BillingTable` resource's properties in `template.yaml`.
pub fn definition() -> TableDefinition {
    let template: serde_yaml::Value =
        serde_yaml::from_str(TEMPLATE).expect("template.yaml is valid YAML");
    let properties = template["Resources"]["BillingTable"]["Properties"].clone();
    serde_yaml::from_value(properties).expect("template.yaml defines Resources.BillingTable")
}

fn key_schema(keys: &[KeyDef]) -> Result<Vec<KeySchemaElement>, StoreError> {
    keys.iter()
        .map(|k| {
            KeySchemaElement::builder()
                .attribute_name(&k.attribute_name)
                .key_type(KeyType::from(k.key_type.as_str()))
                .build()
                .map_err(StoreError::build)
        })
        .collect()
}

fn projection(index: &IndexDef) -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::from(
            index.projection.projection_type.as_str(),
        ))
        .build()
}

fn global_index(index: &IndexDef) -> Result<GlobalSecondaryIndex, StoreError> {
    GlobalSecondaryIndex::builder()
        .index_name(&index.index_name)
        .set_key_schema(Some(key_schema(&index.key_schema)?))
        .projection(projection(index))
        .build()
        .map_err(StoreError::build)
}

fn attribute_definitions(def: &TableDefinition) -> Result<Vec<AttributeDefinition>, StoreError> {
    def.attribute_definitions
        .iter()
        .map(|attribute| {
            AttributeDefinition::builder()
                .attribute_name(&attribute.attribute_name)
                .attribute_type(ScalarAttributeType::from(attribute.attribute_type.as_str()))
                .build()
                .map_err(StoreError::build)
        })
        .collect()
}

impl Store {
    /// Creates this store's table from the template's definition and enables its TTL.
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let def = definition();
        let mut request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .set_key_schema(Some(key_schema(&def.key_schema)?));
        request = request.set_attribute_definitions(Some(attribute_definitions(&def)?));
        for index in &def.global_secondary_indexes {
            request = request.global_secondary_indexes(global_index(index)?);
        }
        if let Some(stream) = &def.stream_specification {
            request = request.stream_specification(
                StreamSpecification::builder()
                    .stream_enabled(true)
                    .stream_view_type(StreamViewType::from(stream.stream_view_type.as_str()))
                    .build()
                    .map_err(StoreError::build)?,
            );
        }
        request.send().await.map_err(StoreError::sdk)?;
        if let Some(ttl) = def.time_to_live_specification {
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(
                    TimeToLiveSpecification::builder()
                        .attribute_name(ttl.attribute_name)
                        .enabled(ttl.enabled)
                        .build()
                        .map_err(StoreError::build)?,
                )
                .send()
                .await
                .map_err(StoreError::sdk)?;
        }
        Ok(())
    }

    /// Creates the table unless it exists (the dev server's persistent table), and adds the
    /// indexes a table made by an older version lacks.
    pub async fn ensure_table(&self) -> Result<(), StoreError> {
        let Ok(described) = self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        else {
            return self.create_table().await;
        };
        let existing: Vec<String> = described
            .table()
            .map(|t| t.global_secondary_indexes())
            .unwrap_or_default()
            .iter()
            .filter_map(|i| i.index_name().map(str::to_owned))
            .collect();
        let def = definition();
        for index in &def.global_secondary_indexes {
            if existing.contains(&index.index_name) {
                continue;
            }
            let create = CreateGlobalSecondaryIndexAction::builder()
                .index_name(&index.index_name)
                .set_key_schema(Some(key_schema(&index.key_schema)?))
                .projection(projection(index))
                .build()
                .map_err(StoreError::build)?;
            self.client
                .update_table()
                .table_name(&self.table)
                .set_attribute_definitions(Some(attribute_definitions(&def)?))
                .global_secondary_index_updates(
                    GlobalSecondaryIndexUpdate::builder().create(create).build(),
                )
                .send()
                .await
                .map_err(StoreError::sdk)?;
        }
        Ok(())
    }

    /// Whether the table answers.
    pub async fn ping(&self) -> Result<(), StoreError> {
        self.client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
            .map_err(StoreError::sdk)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_template_defines_keys_an_index_a_stream_and_ttl() {
        let def = super::definition();
        assert_eq!(def.key_schema.len(), 2);
        assert!(def
            .global_secondary_indexes
            .iter()
            .any(|i| i.index_name == "gsi1"));
        assert!(def.stream_specification.is_some());
        assert_eq!(
            def.time_to_live_specification.map(|t| t.attribute_name),
            Some(super::super::keys::TTL_ATTRIBUTE.to_owned())
        );
    }
}
