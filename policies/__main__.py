"""Entry point of the policy pack for `pulumi preview/up --policy-pack policies`.

Only this file builds the PolicyPack: constructing it starts the analyzer's gRPC server and blocks, so tests and the
offline plan import the rules from ``clickstream_policies`` instead.
"""

from pulumi_policy import EnforcementLevel, PolicyPack

from clickstream_policies import PACK_NAME, POLICIES

PolicyPack(name=PACK_NAME, policies=POLICIES, enforcement_level=EnforcementLevel.MANDATORY)
