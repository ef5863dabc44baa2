"""Offline commands: model import and export, the Bento build, the plan under mocks, cost and
capacity. They import `service` and `infra`, never the other way round."""
