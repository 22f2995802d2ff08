// One Key Vault secret. A module of its own so that ../modules/resources.bicep deploys it only when a
// value is given (`module ... = if (...)`): provisioning never overwrites a secret set by hand.
targetScope = 'resourceGroup'

param vaultName string
param secretName string
@secure()
param value string
param contentType string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: vaultName
}

resource secret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: secretName
  properties: {
    value: value
    contentType: contentType
  }
}
