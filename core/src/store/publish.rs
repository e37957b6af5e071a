//! Public listings: a station store keeps, for every shop, a `pub/<code>`
//! document holding the shop without its contact. Stewards receive listings
//! instead of shops, so a volunteer's phone never holds a shopkeeper's phone
//! number (docs/adr/0006-partial-replication.md). An Automerge change cannot be
//! cut into a public and a private half; a second document can.

use automerge::ActorId;
use rusqlite::Transaction;

use super::registry::{read_shop, write_patch};
use super::{Origin, get_meta, index, load_doc, persist, write_document};
use crate::doc;
use crate::error::{Error, Result};
use crate::model::shop::{Shop, ShopPatch};

/// The `meta` key that makes a store publish listings (the sync server's).
pub(crate) const PUBLISHES: &str = "publish_listings";

/// Brings the listing of every shop written in this transaction up to date
/// (only on a publishing store), with this store's own actor; the changes go
/// into the feed like any local edit. Called by `commit`.
pub(crate) fn flush(tx: &Transaction<'_>) -> Result<()> {
    let ids: Vec<String> = {
        let mut stmt = tx.prepare_cached("DELETE FROM temp.publish_queue RETURNING id")?;
        stmt.query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?
    };
    if ids.is_empty() || get_meta(tx, PUBLISHES)?.as_deref() != Some("1") {
        return Ok(());
    }
    let actor = get_meta(tx, "actor")?
        .ok_or_else(|| Error::corrupt("meta.actor", "missing"))
        .and_then(|hex| {
            ActorId::try_from(hex.as_str()).map_err(|e| Error::corrupt("meta.actor", e))
        })?;
    for id in ids {
        let public = read_shop(tx, &id)?.public();
        publish(tx, &actor, &public)?;
    }
    Ok(())
}

impl super::Store {
    /// Brings the listings of these shops up to date with this store's own
    /// actor, on any store: a city's station instances keep read models that
    /// do not publish, and the instance that accepted a shop's change writes
    /// its listing (and pushes it like any of its own changes). Shops this
    /// store does not hold are left alone.
    pub fn publish_listings_of(&mut self, shop_ids: &[String]) -> Result<()> {
        let tx = self.conn.transaction()?;
        for id in shop_ids {
            match read_shop(&tx, id) {
                Ok(shop) => publish(&tx, &self.actor, &shop.public())?,
                Err(Error::NotFound { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        super::commit(tx)
    }
}

fn publish(tx: &Transaction<'_>, actor: &ActorId, public: &Shop) -> Result<()> {
    let listing = public.listing_id();
    match load_doc(tx, &listing, actor)? {
        None => {
            let (mut d, hash) = doc::create(actor, public)?;
            let view = index::view_of(&index::Entity::Listing(public.clone()))?;
            write_document(tx, &listing, &d.save(), Some(&view), &[hash], Origin::Local)?;
        }
        Some(mut d) => {
            let old: Shop = doc::read(&d, &listing)?;
            let patch = ShopPatch::between(&old, public);
            if patch.is_empty() {
                return Ok(());
            }
            write_patch(&mut d, &patch)?;
            if let Some(hash) = d.commit() {
                persist(tx, &listing, &mut d, &[hash], Origin::Local)?;
            }
        }
    }
    Ok(())
}
