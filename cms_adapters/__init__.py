"""CMS adapters: one protocol, one adapter per CMS, all mapping to the canonical model."""
