"""Rules: the rule model, PromQL evaluation over the agent's own samples, the alert state machine."""
