//! The example schemas of docs/schemas.md (examples/schemas/) parse, name their records as the
//! record strategy expects, and encode and decode the docs' sample values.

use eddy_schema::{ParsedSchema, SchemaType, Source};
use serde_json::json;

fn parse(schema_type: SchemaType, text: &str) -> ParsedSchema {
    ParsedSchema::parse(&Source { schema_type, schema: text.to_string(), references: vec![] })
        .expect("the example parses")
}

#[test]
fn the_e_commerce_examples_parse_and_round_trip() {
    let examples = [
        (
            SchemaType::Avro,
            include_str!("../../../examples/schemas/OrderCreated.avsc"),
            "shop.orders.OrderCreated",
            json!({"order_id": "o-1", "customer_id": "c-7",
                   "lines": [{"sku": "tea", "quantity": 2, "unit_price_cents": 450}],
                   "total_cents": 900, "currency": "EUR"}),
        ),
        (
            SchemaType::Avro,
            include_str!("../../../examples/schemas/InventoryReserved.avsc"),
            "shop.inventory.InventoryReserved",
            json!({"order_id": "o-1", "reservation_id": "r-1", "skus": ["tea"]}),
        ),
        (
            SchemaType::Json,
            include_str!("../../../examples/schemas/PaymentProcessed.json"),
            "shop.payments.PaymentProcessed",
            json!({"order_id": "o-1", "payment_id": "p-1", "amount_cents": 900, "currency": "EUR"}),
        ),
        (
            SchemaType::Json,
            include_str!("../../../examples/schemas/PaymentFailed.json"),
            "shop.payments.PaymentFailed",
            json!({"order_id": "o-1", "reason": "declined"}),
        ),
        (
            SchemaType::Protobuf,
            include_str!("../../../examples/schemas/OrderShipped.proto"),
            "shop.shipping.OrderShipped",
            json!({"orderId": "o-1", "carrier": "post", "trackingNumber": "T1", "shippedAtMs": "1700000000000"}),
        ),
    ];
    for (schema_type, text, record, value) in examples {
        let schema = parse(schema_type, text);
        let encoded = schema.encode_json(&value).unwrap_or_else(|e| panic!("{record}: {e}"));
        assert_eq!(schema.record_name(&encoded).as_deref(), Ok(record));
        assert_eq!(schema.validate(&encoded), Ok(()), "{record}");
        assert_eq!(schema.decode_json(&encoded).unwrap(), value, "{record}");
    }
}

#[test]
fn the_documented_evolutions_of_order_created() {
    let v1 = parse(SchemaType::Avro, include_str!("../../../examples/schemas/OrderCreated.avsc"));
    let with = |field: serde_json::Value| {
        let mut schema: serde_json::Value =
            serde_json::from_str(include_str!("../../../examples/schemas/OrderCreated.avsc")).unwrap();
        schema["fields"].as_array_mut().unwrap().push(field);
        parse(SchemaType::Avro, &schema.to_string())
    };
    let coupon = with(json!({"name": "coupon", "type": ["null", "string"], "default": null}));
    assert_eq!(coupon.read_problems(&v1), Vec::<String>::new(), "a defaulted field reads old records");
    let points = with(json!({"name": "loyalty_points", "type": "int"}));
    assert!(!points.read_problems(&v1).is_empty(), "a field without a default cannot read old records");
}
