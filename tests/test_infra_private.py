"""The private storage option of the templates (privateNetworking), read with pycep-parser: the
account closed, private endpoints and DNS zones for blob, queue and table, the app integrated in
the delegated subnet, and LOOP_TRANSFER_MODE=deposit, a value the app accepts."""

from __future__ import annotations

import json
from typing import Any

import pytest

from shared.platform.settings import TRANSFER_MODES, load_settings
from tests.infra_templates import INFRA, parse


@pytest.fixture(scope="module")
def network() -> dict[str, Any]:
    return parse(INFRA / "modules" / "network.bicep")


def conditional(value: Any) -> dict[str, Any]:
    operator = value["operator"]
    assert operator["type"] == "conditional", value
    return operator["operands"]


def test_the_parameter_is_off_by_default_and_reaches_the_module(main):
    assert main["parameters"]["privateNetworking"]["default"] is False
    params = main["modules"]["resources"]["config"]["params"]
    assert params["privateNetworking"] == "privateNetworking"
    mode = conditional(params["loopTransferMode"])
    assert (mode["condition"], mode["true_value"], mode["false_value"]) == (
        "privateNetworking", "deposit", "loopTransferMode")
    parameters = json.loads((INFRA / "main.parameters.json").read_text())["parameters"]
    assert parameters["privateNetworking"]["value"] == "${FEC_PRIVATE_NETWORKING=false}"
    assert parameters["loopTransferMode"]["value"] == "${FEC_LOOP_TRANSFER_MODE=sas}"


def test_the_storage_account_closes_to_public_networks(resources):
    properties = resources["resources"]["storage"]["config"]["properties"]
    access = conditional(properties["publicNetworkAccess"])
    assert (access["condition"], access["true_value"], access["false_value"]) == (
        "privateNetworking", "Disabled", "Enabled")
    rule = conditional(properties["networkAcls"]["defaultAction"])
    assert (rule["condition"], rule["true_value"]) == ("privateNetworking", "Deny")


def test_the_app_joins_the_delegated_subnet_and_deposits(resources, network):
    module = resources["modules"]["network"]
    assert module["detail"]["path"] == "network.bicep"
    assert json.dumps(module["config"]["condition"]) == '"privateNetworking"'
    app = resources["resources"]["app"]["config"]["properties"]
    subnet = conditional(app["virtualNetworkSubnetId"])
    assert subnet["condition"] == "privateNetworking"
    assert "appSubnetId" in json.dumps(subnet["true_value"])
    assert "appSubnetId" in network["outputs"]
    settings = {s["name"]: s["value"] for s in app["siteConfig"]["appSettings"]}
    assert settings["LOOP_TRANSFER_MODE"] == "loopTransferMode"
    allowed = next(d for d in resources["parameters"]["loopTransferMode"]["decorators"] if d["type"] == "allowed")
    assert set(allowed["argument"]) == set(TRANSFER_MODES)
    base = {"AzureWebJobsStorage__accountName": "st", "LOOP_API_KEY": "k1:s1", "LOOP_SUBSCRIPTION_KEY": "sub1"}
    for mode in allowed["argument"]:
        assert load_settings({**base, "LOOP_TRANSFER_MODE": mode}).loop_transfer_mode == mode


def test_blob_queue_and_table_each_have_a_private_endpoint_and_dns_zone(network):
    text = json.dumps(network)
    assert network["variables"]["storageServices"]["value"] == ["blob", "queue", "table"]
    resources = network["resources"]
    endpoint = resources["endpoints"]["config"]["config"]["properties"]
    connection = endpoint["privateLinkServiceConnections"][0]["properties"]
    assert connection["privateLinkServiceId"] == "storageAccountId"
    assert connection["groupIds"] == ["service"]
    assert "endpointSubnetName" in json.dumps(endpoint["subnet"])
    zone_name = json.dumps(resources["zones"]["config"]["config"]["name"])
    assert "privatelink.${service}." in zone_name
    assert "suffixes" in zone_name
    link = resources["zoneLinks"]["config"]["config"]["properties"]["virtualNetwork"]["id"]
    assert link["operator"]["operands"] == {"operand_1": "vnet", "operand_2": "id"}
    assert "zones" in json.dumps(resources["zoneGroups"]["config"]["config"]["properties"])
    assert "Microsoft.App/environments" in text
