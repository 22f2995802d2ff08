// Private networking for the storage account, deployed when ../main.bicep has privateNetworking=true:
// a virtual network with a subnet delegated to Flex Consumption (the app's VNet integration) and a
// subnet for private endpoints; one private endpoint per storage service the app uses (blob: files,
// snapshots, reports, deployment package; queue: the blob trigger's Event Grid source and status
// checks; table: the ledger), each with its private DNS zone linked to the network, so the account's
// usual names resolve to private addresses inside it. Not compiled or deployed from the development
// machine: see infra/README.md, "Private storage".
targetScope = 'resourceGroup'

param location string
param tags object
@description('Suffix shared by the resource names of this deployment')
param token string
@description('The storage account the private endpoints reach')
param storageAccountId string
param addressPrefix string = '10.60.0.0/16'
param appSubnetPrefix string = '10.60.0.0/24'
param endpointSubnetPrefix string = '10.60.1.0/24'

var storageServices = ['blob', 'queue', 'table']
var appSubnetName = 'snet-app'
var endpointSubnetName = 'snet-endpoints'

// No inbound rule beyond Azure's defaults (traffic from inside the virtual network only).
resource subnetRules 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: 'nsg-fec-${token}'
  location: location
  tags: tags
  properties: { securityRules: [] }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: 'vnet-fec-${token}'
  location: location
  tags: tags
  properties: {
    addressSpace: { addressPrefixes: [addressPrefix] }
    subnets: [
      {
        name: appSubnetName
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: { id: subnetRules.id }
          // The delegation Flex Consumption's virtual network integration requires.
          delegations: [{ name: 'flex-consumption', properties: { serviceName: 'Microsoft.App/environments' } }]
        }
      }
      {
        name: endpointSubnetName
        properties: {
          addressPrefix: endpointSubnetPrefix
          networkSecurityGroup: { id: subnetRules.id }
          privateEndpointNetworkPolicies: 'Disabled'
        }
      }
    ]
  }
}

resource zones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for service in storageServices: {
    name: 'privatelink.${service}.${environment().suffixes.storage}'
    location: 'global'
    tags: tags
  }
]

resource zoneLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (service, i) in storageServices: {
    parent: zones[i]
    name: 'link-${token}'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: { id: vnet.id }
    }
  }
]

resource endpoints 'Microsoft.Network/privateEndpoints@2023-11-01' = [
  for service in storageServices: {
    name: 'pe-fec-${service}-${token}'
    location: location
    tags: tags
    properties: {
      subnet: { id: resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, endpointSubnetName) }
      privateLinkServiceConnections: [
        {
          name: 'storage-${service}'
          properties: { privateLinkServiceId: storageAccountId, groupIds: [service] }
        }
      ]
    }
  }
]

resource zoneGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = [
  for (service, i) in storageServices: {
    parent: endpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [{ name: service, properties: { privateDnsZoneId: zones[i].id } }]
    }
  }
]

output appSubnetId string = resourceId('Microsoft.Network/virtualNetworks/subnets', vnet.name, appSubnetName)
output vnetName string = vnet.name
