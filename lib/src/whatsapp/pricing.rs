//! Meta's charge of an outbound message, as its status webhooks state it (`pricing`:
//! `billable`, `pricing_model`, `category`, `type`). The database charges each message part
//! once, when it is delivered, at the price of its category and market
//! (`private.whatsapp_charge_parts`, `private.whatsapp_prices`).

use serde::Serialize;
use serde_json::Value;

/// The pricing category of a billable message (`pricing.category`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PricingCategory {
    Marketing,
    MarketingLite,
    Utility,
    Authentication,
    AuthenticationInternational,
    Service,
    /// A category this service does not know yet: counted, priced 0 until it has a price.
    Other,
}

impl PricingCategory {
    fn of(category: &str) -> Self {
        match category {
            "marketing" => Self::Marketing,
            "marketing_lite" => Self::MarketingLite,
            "utility" => Self::Utility,
            "authentication" => Self::Authentication,
            "authentication_international" => Self::AuthenticationInternational,
            "service" => Self::Service,
            _ => Self::Other,
        }
    }
}

/// The category Meta charges a status's message in, or `None` when the status says it is
/// free: no `pricing`, `billable: false`, a free `type` (`free_customer_service`,
/// `free_entry_point`: Meta's own examples pair them with `billable: true`), or the old
/// conversation-based model (`CBP`, charged per conversation, not per message).
pub fn charge(pricing: Option<&Value>) -> Option<PricingCategory> {
    let pricing = pricing?;
    let text = |key: &str| pricing.get(key).and_then(Value::as_str);
    let free = matches!(
        text("type"),
        Some("free_customer_service" | "free_entry_point")
    );
    let billable = pricing
        .get("billable")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    if free || !billable || text("pricing_model") == Some("CBP") {
        return None;
    }
    text("category").map(PricingCategory::of)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn only_regular_billable_per_message_pricing_is_charged() {
        let regular = json!({"billable": true, "pricing_model": "PMP", "type": "regular", "category": "utility"});
        assert_eq!(charge(Some(&regular)), Some(PricingCategory::Utility));
        let no_billable =
            json!({"pricing_model": "PMP", "type": "regular", "category": "marketing"});
        assert_eq!(charge(Some(&no_billable)), Some(PricingCategory::Marketing));
        let free = json!({"billable": true, "pricing_model": "PMP", "type": "free_customer_service", "category": "service"});
        assert_eq!(charge(Some(&free)), None);
        let entry = json!({"billable": true, "pricing_model": "PMP", "type": "free_entry_point", "category": "utility"});
        assert_eq!(charge(Some(&entry)), None);
        let unbillable = json!({"billable": false, "pricing_model": "PMP", "category": "utility"});
        assert_eq!(charge(Some(&unbillable)), None);
        let conversation = json!({"billable": true, "pricing_model": "CBP", "category": "utility"});
        assert_eq!(charge(Some(&conversation)), None);
        let unknown = json!({"pricing_model": "PMP", "type": "regular", "category": "hologram"});
        assert_eq!(charge(Some(&unknown)), Some(PricingCategory::Other));
        assert_eq!(charge(None), None);
        assert_eq!(charge(Some(&json!("odd"))), None);
    }
}
