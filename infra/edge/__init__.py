"""The public edge: address and certificate, Cloud Armor, Gateway API objects, API keys."""
