"""Offline commands over the Pulumi program (plan under mocks, cost, capacity): they import
`infra`, never the other way round."""
