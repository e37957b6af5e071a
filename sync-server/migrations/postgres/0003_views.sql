-- Each authoritative document's view (issue 17): the entity its index rows
-- are written from, as JSON in the core model's serde form, made by the
-- instance that merged the push. A read model indexes the document from it
-- instead of merging the change again (docs/adr/0017-read-models-follow-documents.md).
-- NULL for a document written before this migration: the read model then
-- reads the saved document itself.
ALTER TABLE documents ADD COLUMN view TEXT;
