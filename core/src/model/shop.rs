//! Responsible subjects (责任主体): the shops, offices and operators that keep the
//! zone in front of their door.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::geo::Zone;
use super::{MAX_PLACE_CHARS, optional_text, required_text};
use crate::error::{Error, Result};
use crate::qr::ShopCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopCategory {
    /// 沿街商户
    Shop,
    /// 机关企事业单位 (offices, hospitals, schools)
    Institution,
    /// 共享单车企业
    SharedBikeOperator,
    /// 外卖配送平台
    DeliveryPlatform,
}

impl ShopCategory {
    pub const ALL: [ShopCategory; 4] = [
        ShopCategory::Shop,
        ShopCategory::Institution,
        ShopCategory::SharedBikeOperator,
        ShopCategory::DeliveryPlatform,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ShopCategory::Shop => "shop",
            ShopCategory::Institution => "institution",
            ShopCategory::SharedBikeOperator => "shared_bike_operator",
            ShopCategory::DeliveryPlatform => "delivery_platform",
        }
    }

    pub fn parse(s: &str) -> Option<ShopCategory> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            ShopCategory::Shop => "沿街商户",
            ShopCategory::Institution => "机关企事业单位",
            ShopCategory::SharedBikeOperator => "共享单车企业",
            ShopCategory::DeliveryPlatform => "外卖配送企业",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopTag {
    /// 医院周边
    Hospital,
    /// 学校周边
    School,
    /// 商圈
    BusinessDistrict,
    /// 交通枢纽
    TransportHub,
    /// 责任区待核定: the zone was estimated from a point in the district's
    /// ledger; redrawing the zone clears it.
    ZoneEstimated,
}

impl ShopTag {
    pub fn as_str(self) -> &'static str {
        match self {
            ShopTag::Hospital => "hospital",
            ShopTag::School => "school",
            ShopTag::BusinessDistrict => "business_district",
            ShopTag::TransportHub => "transport_hub",
            ShopTag::ZoneEstimated => "zone_estimated",
        }
    }

    pub fn parse(s: &str) -> Option<ShopTag> {
        [
            ShopTag::Hospital,
            ShopTag::School,
            ShopTag::BusinessDistrict,
            ShopTag::TransportHub,
            ShopTag::ZoneEstimated,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }

    pub fn label_zh(self) -> &'static str {
        match self {
            ShopTag::Hospital => "医院周边",
            ShopTag::School => "学校周边",
            ShopTag::BusinessDistrict => "商圈",
            ShopTag::TransportHub => "交通枢纽",
            ShopTag::ZoneEstimated => "责任区待核定",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShopStatus {
    /// 在营
    Active,
    /// 已关闭
    Closed,
}

impl ShopStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShopStatus::Active => "active",
            ShopStatus::Closed => "closed",
        }
    }

    pub fn parse(s: &str) -> Option<ShopStatus> {
        match s {
            "active" => Some(ShopStatus::Active),
            "closed" => Some(ShopStatus::Closed),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Contact {
    pub person: String,
    pub phone: String,
}

impl Contact {
    /// A listing's contact: nobody to call.
    pub fn is_empty(&self) -> bool {
        self.person.is_empty() && self.phone.is_empty()
    }
}

/// The signed responsibility letter (责任书 / 承诺书); re-issued when rules change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Letter {
    pub version: String,
    pub signed_on: NaiveDate,
}

/// One responsible subject. Its id is derived from its code, so the same code
/// created on two devices offline merges into one record instead of two.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Shop {
    pub code: String,
    pub name: String,
    pub address: String,
    pub category: ShopCategory,
    /// Private: not in the public listing a steward's phone receives (empty there).
    #[serde(default, skip_serializing_if = "Contact::is_empty")]
    pub contact: Contact,
    pub zone: Zone,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub letter: Option<Letter>,
    /// The subdistrict (街道) the shop belongs to: officers receive their
    /// subdistrict's shops. Optional so records made before it existed still read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subdistrict: Option<String>,
    pub street: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lane: Option<String>,
    /// Stored as a map of tag → true so two devices adding different tags both win.
    #[serde(default, with = "tag_set")]
    pub tags: BTreeSet<ShopTag>,
    pub status: ShopStatus,
}

impl Shop {
    /// The document id for a shop code.
    pub fn id_for(code: &ShopCode) -> String {
        format!("shop/{}", code.as_str())
    }

    pub fn id(&self) -> String {
        format!("shop/{}", self.code)
    }

    /// Checks every field and normalises text (trimmed); returns the cleaned shop.
    pub fn validated(mut self) -> Result<Shop> {
        self.contact.person = required_text("contact.person", &self.contact.person, 50)?;
        self.contact.phone = phone("contact.phone", &self.contact.phone)?;
        self.validated_public()
    }

    /// Checks every field but the contact: a public listing has none.
    pub fn validated_public(mut self) -> Result<Shop> {
        self.code = ShopCode::parse(&self.code)
            .map_err(|e| Error::invalid("code", e.to_string()))?
            .as_str()
            .to_string();
        self.name = required_text("name", &self.name, 100)?;
        self.address = required_text("address", &self.address, 200)?;
        self.subdistrict =
            optional_text("subdistrict", self.subdistrict.as_deref(), MAX_PLACE_CHARS)?;
        self.street = required_text("street", &self.street, MAX_PLACE_CHARS)?;
        self.lane = optional_text("lane", self.lane.as_deref(), MAX_PLACE_CHARS)?;
        if let Some(letter) = &mut self.letter {
            letter.version = required_text("letter.version", &letter.version, 30)?;
        }
        // Re-validate the ring: a Zone built by hand elsewhere passed the same checks.
        self.zone = Zone::new(self.zone.points().to_vec())?;
        Ok(self)
    }

    /// The id of this shop's public listing (`pub/<code>`), the document a
    /// steward's phone holds instead of the shop's own.
    pub fn listing_id(&self) -> String {
        format!("pub/{}", self.code)
    }

    /// The shop without its private fields: what a listing holds.
    pub fn public(&self) -> Shop {
        Shop {
            contact: Contact::default(),
            ..self.clone()
        }
    }
}

/// A partial edit of a shop's registry fields; `None` leaves a field alone.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShopPatch {
    pub name: Option<String>,
    pub address: Option<String>,
    pub category: Option<ShopCategory>,
    pub contact: Option<Contact>,
    pub zone: Option<Zone>,
    pub letter: Option<Letter>,
    /// `Some(None)` removes the subdistrict.
    pub subdistrict: Option<Option<String>>,
    pub street: Option<String>,
    /// `Some(None)` removes the lane.
    pub lane: Option<Option<String>>,
    pub add_tags: BTreeSet<ShopTag>,
    pub remove_tags: BTreeSet<ShopTag>,
    pub status: Option<ShopStatus>,
}

impl ShopPatch {
    /// The edit that turns `old` into `new` (both validated, same code).
    pub fn between(old: &Shop, new: &Shop) -> ShopPatch {
        fn changed<T: PartialEq + Clone>(a: &T, b: &T) -> Option<T> {
            (a != b).then(|| b.clone())
        }
        ShopPatch {
            name: changed(&old.name, &new.name),
            address: changed(&old.address, &new.address),
            category: changed(&old.category, &new.category),
            contact: changed(&old.contact, &new.contact),
            zone: changed(&old.zone, &new.zone),
            letter: if old.letter != new.letter {
                new.letter.clone()
            } else {
                None
            },
            subdistrict: changed(&old.subdistrict, &new.subdistrict),
            street: changed(&old.street, &new.street),
            lane: changed(&old.lane, &new.lane),
            add_tags: new.tags.difference(&old.tags).copied().collect(),
            remove_tags: old.tags.difference(&new.tags).copied().collect(),
            status: changed(&old.status, &new.status),
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == ShopPatch::default()
    }
}

/// A Chinese mobile (11 digits starting with 1) or landline with area code;
/// an optional +86 prefix, spaces and hyphens are allowed.
pub(crate) fn phone(field: &str, value: &str) -> Result<String> {
    let v = value.trim();
    let digits: String = v.chars().filter(|c| c.is_ascii_digit()).collect();
    let allowed = v
        .chars()
        .all(|c| c.is_ascii_digit() || c == ' ' || c == '-' || c == '+');
    if !allowed || !(7..=15).contains(&digits.len()) {
        return Err(Error::invalid(
            field,
            "not a phone number (digits, spaces, '-' and a leading '+' only)",
        ));
    }
    Ok(v.to_string())
}

mod tag_set {
    use std::collections::{BTreeMap, BTreeSet};

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::ShopTag;

    pub fn serialize<S: Serializer>(set: &BTreeSet<ShopTag>, s: S) -> Result<S::Ok, S::Error> {
        let map: BTreeMap<ShopTag, bool> = set.iter().map(|t| (*t, true)).collect();
        map.serialize(s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeSet<ShopTag>, D::Error> {
        // A tag this build does not know (written by a newer one) is skipped,
        // not an error that would hide the whole shop.
        let map = BTreeMap::<String, bool>::deserialize(d)?;
        Ok(map
            .into_iter()
            .filter(|(_, on)| *on)
            .filter_map(|(t, _)| ShopTag::parse(&t))
            .collect())
    }
}
