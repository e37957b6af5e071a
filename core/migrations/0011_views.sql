-- Issue 17. Each document's entity as its index read it, as JSON (the
-- model's serde form): a station sends it beside the saved document in a
-- snapshot page, so that a new device indexes the document without loading
-- it into Automerge first (docs/protocol.md, snapshot). Written with the
-- index rows; NULL until a document is indexed again after this migration
-- (a snapshot then sends the document alone, as before).
ALTER TABLE documents ADD COLUMN view TEXT;
