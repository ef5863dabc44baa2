"""Pulumi policy pack of the kit's secure defaults: `pulumi preview --policy-pack policy`."""
