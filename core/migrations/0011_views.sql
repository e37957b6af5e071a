-- Issue 17. Each document's entity as its index read it, as JSON (the
-- model's serde form): a station sends it beside the saved document in a
-- snapshot page, so that a new device indexes the document without loading
-- it into Automerge first (docs/protocol.md, snapshot). Written with the
-- index rows; the index is rebuilt after this migration, which writes every
-- document's view (a document without one travels alone, as before).
ALTER TABLE documents ADD COLUMN view TEXT;
