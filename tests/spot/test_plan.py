"""Pure builders and decisions: launch-template data, fleet request, what changed, error classification."""

from __future__ import annotations

from archfleet.errors import InputError, OperationFailed
from archfleet.fleet.spot import AmiSource, SpotFleetSpec
from archfleet.spot import plan
from archfleet.spot.connection import classify

SPEC = SpotFleetSpec(
    name="ci", target_capacity=2, instance_types=("t4g.small", "t3.small", "t4g.medium"),
    amis={"arm64": AmiSource(image_id="ami-00000000000000001"), "amd64": AmiSource(image_id="ami-00000000000000002")},
    key_pair="k", security_groups=("sg-1",), subnets=("subnet-a", "subnet-b"), tags={"team": "infra"},
    max_price=0.02, role="ci-runner",
)
TYPE_ARCH = {"t4g.small": "arm64", "t4g.medium": "arm64", "t3.small": "amd64"}
REFS = {"arm64": plan.TemplateRef("arm64", "lt-arm", "1"), "amd64": plan.TemplateRef("amd64", "lt-x86", "3")}


def test_one_config_per_architecture_overrides_in_preference_order() -> None:
    configs = plan.launch_template_configs(SPEC, REFS, TYPE_ARCH)
    assert [c["LaunchTemplateSpecification"] for c in configs] == [
        {"LaunchTemplateId": "lt-arm", "Version": "1"}, {"LaunchTemplateId": "lt-x86", "Version": "3"}]
    assert [(o["InstanceType"], o["SubnetId"], o["Priority"]) for o in configs[0]["Overrides"]] == [
        ("t4g.small", "subnet-a", 0.0), ("t4g.small", "subnet-b", 0.0),
        ("t4g.medium", "subnet-a", 2.0), ("t4g.medium", "subnet-b", 2.0)]
    assert {o["MaxPrice"] for c in configs for o in c["Overrides"]} == {"0.02"}


def test_fleet_request_is_a_tagged_spot_maintain_fleet() -> None:
    request = plan.fleet_request(SPEC, [])
    assert request["Type"] == "maintain"
    assert request["SpotOptions"]["AllocationStrategy"] == "price-capacity-optimized"
    assert request["TargetCapacitySpecification"] == {
        "TotalTargetCapacity": 2, "SpotTargetCapacity": 2, "DefaultTargetCapacityType": "spot"}
    assert {"Key": "archfleet:fleet", "Value": "ci"} in request["TagSpecifications"][0]["Tags"]


def test_template_data_matches_what_ec2_echoes_back_with_extras() -> None:
    wanted = plan.launch_template_data(SPEC, "ami-00000000000000001")
    echoed = {**wanted, "TagSpecifications": [*wanted["TagSpecifications"], {"ResourceType": "launch-template",
                                                                               "Tags": []}],
              "SecurityGroupIds": list(reversed(wanted["SecurityGroupIds"]))}
    assert plan.template_matches(wanted, echoed)
    assert not plan.template_matches(wanted, {**echoed, "ImageId": "ami-00000000000000009"})
    assert not plan.template_matches(plan.launch_template_data(SpotFleetSpec(
        **{**SPEC.__dict__, "role": "proxy"}), "ami-00000000000000001"), echoed)


def test_fleet_change_only_when_capacity_or_configs_differ() -> None:
    configs = plan.launch_template_configs(SPEC, REFS, TYPE_ARCH)
    existing = {"TargetCapacitySpecification": {"TotalTargetCapacity": 2}, "LaunchTemplateConfigs": [
        {**c, "Overrides": [{**o, "MaxPrice": "0.020000"} for o in c["Overrides"]]} for c in configs]}
    assert not plan.fleet_change(existing, 2, configs).needed
    change = plan.fleet_change(existing, 5, configs)
    assert change.modify_arguments("fleet-1") == {"FleetId": "fleet-1",
                                                  "TargetCapacitySpecification": {"TotalTargetCapacity": 5}}
    newer = plan.launch_template_configs(SPEC, {**REFS, "arm64": plan.TemplateRef("arm64", "lt-arm", "2")}, TYPE_ARCH)
    assert plan.fleet_change(existing, 2, newer).configs == newer


def test_ec2_error_codes_become_one_line_errors_with_the_right_exit_code() -> None:
    capacity = classify("InsufficientInstanceCapacity", "We currently do not have sufficient t4g.small capacity\n"
                        "in the Availability Zone you requested (eu-west-1a).", "spot fleet ci: creating the EC2 fleet")
    assert isinstance(capacity, OperationFailed) and capacity.exit_code == 1
    assert str(capacity) == ("spot fleet ci: creating the EC2 fleet: insufficient spot capacity "
                             "(InsufficientInstanceCapacity): We currently do not have sufficient t4g.small capacity "
                             "in the Availability Zone you requested (eu-west-1a).")
    assert isinstance(classify("SpotMaxPriceTooLow", "x", "a"), OperationFailed)
    bad = classify("InvalidAMIID.NotFound", "The image id '[ami-1]' does not exist", "a")
    assert isinstance(bad, InputError) and bad.exit_code == 2
    assert type(classify("RequestLimitExceeded", "slow down", "a")) is OperationFailed
