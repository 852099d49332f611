"""Envelope encryption: per-owner data keys wrapped by rotating key-encryption keys."""
