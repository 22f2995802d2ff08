// FEC -> Cegid Loop import pipeline on Azure: Flex Consumption, managed identity, Event Grid source.
// Deployed with `azd up` into a resource group (AZURE_RESOURCE_GROUP). Not compiled or deployed from
// the development machine (no Azure access there): see infra/README.md.
targetScope = 'resourceGroup'

@minLength(1)
@maxLength(64)
@description('azd environment name, used to derive unique resource names')
param environmentName string

@description('Location of every resource')
param location string = resourceGroup().location

@secure()
@description('Loop API key, "key:secret" (x-apikey). Empty: set the Key Vault secret loop-api-key later.')
param loopApiKey string = ''

@secure()
@description('Loop APIM subscription key (Ocp-Apim-Subscription-Key). Empty: set the secret later.')
param loopSubscriptionKey string = ''

param loopApiBaseUrl string = 'https://api.cegid.com/loop-api-publiques'
param importContainerName string = 'api-import-ecrit'
param reportContainerName string = 'fec-import-reports'
param statusPollSchedule string = '0 */1 * * * *'

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var tags = { 'azd-env-name': environmentName }
var appName = 'func-fec-${token}'
var deploymentContainerName = 'app-package-${take(token, 7)}'
var systemTopicName = 'evgt-fec-${token}'

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // SAS via user delegation key, tags
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // blob trigger (Event Grid source)
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // the import ledger
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // Loop keys as Key Vault references
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // App Insights without local auth
}

resource identity 'Microsoft.ManagedIdentity/userAssignedIdentities@2023-01-31' = {
  name: 'id-fec-${token}'
  location: location
  tags: tags
}

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: 'stfec${token}'
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: { name: 'Standard_LRS' }
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // managed identity only: SAS URLs are signed with a user delegation key
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource containers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for name in [importContainerName, reportContainerName, deploymentContainerName]: {
    parent: blobService
    name: name
  }
]

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for name in ['fecimports', 'fecdossiers']: {
    parent: tableService
    name: name
  }
]

resource logAnalytics 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: 'log-fec-${token}'
  location: location
  tags: tags
  properties: { retentionInDays: 30, sku: { name: 'PerGB2018' } }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: 'appi-fec-${token}'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logAnalytics.id
    DisableLocalAuth: true
  }
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: 'kv-fec-${take(token, 15)}'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
  }
}

resource loopApiKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'loop-api-key'
  properties: { value: empty(loopApiKey) ? 'set-me:set-me' : loopApiKey }
}

resource loopSubscriptionKeySecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = {
  parent: vault
  name: 'loop-subscription-key'
  properties: { value: empty(loopSubscriptionKey) ? 'set-me' : loopSubscriptionKey }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-fec-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

resource app 'Microsoft.Web/sites@2024-04-01' = {
  name: appName
  location: location
  tags: union(tags, { 'azd-service-name': 'api' })
  kind: 'functionapp,linux'
  identity: {
    type: 'UserAssigned'
    userAssignedIdentities: { '${identity.id}': {} }
  }
  properties: {
    serverFarmId: plan.id
    httpsOnly: true
    keyVaultReferenceIdentity: identity.id
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: 40, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId } // DefaultAzureCredential in shared/
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
        {
          name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING'
          value: 'ClientId=${identity.properties.clientId};Authorization=AAD'
        }
        { name: 'BLOB_TRIGGER_SOURCE', value: 'EventGrid' }
        { name: 'FEC_IMPORT_CONTAINER', value: importContainerName }
        { name: 'IMPORT_REPORT_CONTAINER', value: reportContainerName }
        { name: 'STATUS_POLL_SCHEDULE', value: statusPollSchedule }
        { name: 'LOOP_API_BASE_URL', value: loopApiBaseUrl }
        { name: 'LOOP_STATUS_PATH', value: '/getImportStatus' }
        { name: 'SAS_TTL_HOURS', value: '24' }
        { name: 'LOOP_API_KEY', value: '@Microsoft.KeyVault(SecretUri=${loopApiKeySecret.properties.secretUri})' }
        {
          name: 'LOOP_SUBSCRIPTION_KEY'
          value: '@Microsoft.KeyVault(SecretUri=${loopSubscriptionKeySecret.properties.secretUri})'
        }
      ]
    }
  }
  dependsOn: [containers]
}

resource storageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataOwner, roles.storageQueueDataContributor, roles.storageTableDataContributor]: {
    name: guid(storage.id, identity.id, role)
    scope: storage
    properties: {
      principalId: identity.properties.principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

resource vaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, identity.id, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

resource monitoringRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, identity.id, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: identity.properties.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId(
      'Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher
    )
  }
}

// The subscription to BlobCreated is created by infra/hooks/postdeploy.sh, once the function's
// blobs_extension key exists.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: systemTopicName
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output AZURE_LOCATION string = location
output RESOURCE_GROUP string = resourceGroup().name
output AZURE_FUNCTION_APP_NAME string = app.name
output AZURE_STORAGE_ACCOUNT_NAME string = storage.name
output EVENT_GRID_SYSTEM_TOPIC_NAME string = systemTopic.name
output FEC_IMPORT_CONTAINER string = importContainerName
output AZURE_KEY_VAULT_NAME string = vault.name
