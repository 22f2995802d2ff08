// Everything the pipeline runs on, inside the resource group created by ../main.bicep.
targetScope = 'resourceGroup'

param environmentName string
param location string
param tags object
@description('Deploying principal (azd AZURE_PRINCIPAL_ID); empty: no role for it')
param principalId string
param principalType string
@description('Object ids allowed to upload FEC files into the import container')
param uploaderPrincipalIds array
@secure()
param loopApiKey string
@secure()
param loopSubscriptionKey string
param loopApiBaseUrl string
param statusPollSchedule string
param maximumInstanceCount int = 40
param statusCheckQueueName string = 'fec-status-checks'
@description('Storage closed to the internet, reached through private endpoints; Loop gets files by deposit')
param privateNetworking bool = false
@allowed(['sas', 'deposit'])
@description('LOOP_TRANSFER_MODE; ../main.bicep sets deposit whenever privateNetworking is true (Loop cannot download from a closed account)')
param loopTransferMode string = 'sas'
param importContainerName string = 'api-import-ecrit'
param reportContainerName string = 'fec-import-reports'
@description('REPORTS_CONTAINER: the readable report next to each dropped file; uploaders may read it')
param reportsContainerName string = 'api-import-ecrit-reports'
@allowed(['fr', 'en'])
@description('REPORT_LANGUAGE: the language of the reports next to the dropped files')
param reportLanguage string = 'fr'
@description('REPORT_TIMEZONE: the time zone of the dates on those reports')
param reportTimezone string = 'Europe/Paris'
param ledgerTableName string = 'fecimports'
@minValue(7)
@description('Snapshots of dropped files (the bytes Loop downloads) are deleted this many days after they were taken, longer than any SAS URL signed when one is taken (SAS_TTL_HOURS is at most 167); `imports resubmit` takes a new snapshot while the blob is still that version')
param snapshotRetentionDays int = 30
@minValue(30)
@description('LEDGER_RETENTION_DAYS: final imports, their ledger rows and their reports are deleted this many days after their last change (the app\'s daily purge); the reports containers\' lifecycle rule deletes any report left unchanged as long')
param ledgerRetentionDays int = 400
@description('NCRONTAB schedule of the retention\'s daily purge (LEDGER_PURGE_SCHEDULE, 6 fields)')
param ledgerPurgeSchedule string = '0 30 2 * * *'
@description('Off by default: when true, a dropped file whose outcome index tag is fecimport=completed is deleted completedFileRetentionDays after it was dropped (the ledger keeps its record until LEDGER_RETENTION_DAYS)')
param deleteCompletedFiles bool = false
@minValue(7)
@description('Days after which a completed dropped file is deleted, when deleteCompletedFiles is true')
param completedFileRetentionDays int = 90
param dossierTableName string = 'fecdossiers'

var token = toLower(uniqueString(subscription().id, resourceGroup().id, environmentName))
var appName = 'func-fec-${token}'
var vaultName = 'kv-fec-${take(token, 15)}'
var deploymentContainerName = 'app-package-${take(token, 7)}'
// The Key Vault secret each Loop setting reads; shared/platform/settings.py names the same secrets in its
// messages, and tests/test_infra.py checks both agree.
var loopApiKeySecretName = 'loop-api-key'
var loopSubscriptionKeySecretName = 'loop-subscription-key'

// Built-in role definition ids.
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b' // app: SAS via user delegation key, tags, deployment package
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe' // operators, uploaders (import container)
  storageBlobDataReader: '2a2b9908-6ea1-4ae2-8e65-a410df84e7d1' // uploaders: the reports of their files
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88' // app: blob trigger (Event Grid source)
  storageTableDataContributor: '0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3' // app and operators: the import ledger
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6' // app: Loop keys as Key Vault references
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7' // operators: set and rotate the Loop keys
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb' // app: Application Insights without local auth
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
  sku: { name: 'Standard_GRS' } // the firms' original files and the ledger survive a region loss
  properties: {
    allowBlobPublicAccess: false
    allowSharedKeyAccess: false // managed identity only: SAS URLs are signed with a user delegation key
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: privateNetworking ? 'Disabled' : 'Enabled'
    networkAcls: { defaultAction: privateNetworking ? 'Deny' : 'Allow', bypass: 'AzureServices' }
  }
}

// Private endpoints, DNS zones and the app's subnet (modules/network.bicep), only for private storage.
module network 'network.bicep' = if (privateNetworking) {
  name: 'fec-network'
  params: {
    location: location
    tags: tags
    token: token
    storageAccountId: storage.id
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

// Each import snapshots its version (shared/flows/submit.py): old snapshots go, the files stay.
// The reports next to the files and the validation reports go LEDGER_RETENTION_DAYS after their last
// write (the app's purge deletes them with their import; this catches any it left). Optional: a
// completed file itself, by its outcome index tag (shared/flows/outcome_tags.py). README, "Where each
// copy of a file lives and for how long".
resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-old-import-snapshots'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['${importContainerName}/'] }
            actions: { snapshot: { delete: { daysAfterCreationGreaterThan: snapshotRetentionDays } } }
          }
        }
        {
          name: 'delete-old-reports'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: { blobTypes: ['blockBlob'], prefixMatch: ['${reportsContainerName}/', '${reportContainerName}/'] }
            actions: { baseBlob: { delete: { daysAfterModificationGreaterThan: ledgerRetentionDays } } }
          }
        }
        {
          name: 'delete-completed-files'
          enabled: deleteCompletedFiles
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: ['blockBlob']
              prefixMatch: ['${importContainerName}/']
              blobIndexMatch: [{ name: 'fecimport', op: '==', value: 'completed' }]
            }
            actions: {
              baseBlob: { delete: { daysAfterModificationGreaterThan: completedFileRetentionDays } }
              snapshot: { delete: { daysAfterCreationGreaterThan: completedFileRetentionDays } }
            }
          }
        }
      ]
    }
  }
}

resource importContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: importContainerName
  properties: { publicAccess: 'None' }
}

// The reports next to the files (shared/flows/verdict_reports.py): never the watched container.
resource reportsContainer 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = {
  parent: blobService
  name: reportsContainerName
  properties: { publicAccess: 'None' }
}

resource otherContainers 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for name in [reportContainerName, deploymentContainerName]: {
    parent: blobService
    name: name
    properties: { publicAccess: 'None' }
  }
]

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// One message per due status check (status_timer/): the queue worker scales out with it.
resource statusCheckQueue 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = {
  parent: queueService
  name: statusCheckQueueName
}

resource tableService 'Microsoft.Storage/storageAccounts/tableServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

resource tables 'Microsoft.Storage/storageAccounts/tableServices/tables@2023-05-01' = [
  for name in [ledgerTableName, dossierTableName]: {
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
  name: vaultName
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 7
    enablePurgeProtection: true
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

// Deployed only when a value is given: an empty parameter leaves the secret as it is, so a second
// `azd provision` never overwrites keys set by hand (infra/README.md, "Rotating the Loop keys").
module loopApiKeySecret 'secret.bicep' = if (!empty(loopApiKey)) {
  name: 'fec-secret-loop-api-key'
  params: {
    vaultName: vault.name
    secretName: loopApiKeySecretName
    value: loopApiKey
    contentType: 'text/plain; Loop x-apikey (key:secret)'
  }
}

module loopSubscriptionKeySecret 'secret.bicep' = if (!empty(loopSubscriptionKey)) {
  name: 'fec-secret-loop-subscription-key'
  params: {
    vaultName: vault.name
    secretName: loopSubscriptionKeySecretName
    value: loopSubscriptionKey
    contentType: 'text/plain; Loop Ocp-Apim-Subscription-Key'
  }
}

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  name: 'plan-fec-${token}'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: { name: 'FC1', tier: 'FlexConsumption' }
  properties: { reserved: true }
}

// --- the app's own roles: the app depends on them, so its first start can already read the
// Loop keys from Key Vault and reach storage with its identity.

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
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
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
    clientCertEnabled: false
    keyVaultReferenceIdentity: identity.id
    // Flex Consumption's virtual network integration: the app reaches the storage's private endpoints.
    virtualNetworkSubnetId: privateNetworking ? network.outputs.appSubnetId : null
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${storage.properties.primaryEndpoints.blob}${deploymentContainerName}'
          authentication: { type: 'UserAssignedIdentity', userAssignedIdentityResourceId: identity.id }
        }
      }
      scaleAndConcurrency: { maximumInstanceCount: maximumInstanceCount, instanceMemoryMB: 2048 }
      runtime: { name: 'python', version: '3.11' }
    }
    siteConfig: {
      ftpsState: 'Disabled'
      http20Enabled: true
      minTlsVersion: '1.2'
      appSettings: [
        { name: 'AzureWebJobsStorage__accountName', value: storage.name }
        { name: 'AzureWebJobsStorage__credential', value: 'managedidentity' }
        { name: 'AzureWebJobsStorage__clientId', value: identity.properties.clientId }
        { name: 'AZURE_CLIENT_ID', value: identity.properties.clientId } // DefaultAzureCredential in shared/
        { name: 'APPLICATIONINSIGHTS_CONNECTION_STRING', value: appInsights.properties.ConnectionString }
        { name: 'APPLICATIONINSIGHTS_AUTHENTICATION_STRING', value: 'ClientId=${identity.properties.clientId};Authorization=AAD' }
        // The Python worker configures azure-monitor-opentelemetry itself (host.json telemetryMode: OpenTelemetry)
        { name: 'PYTHON_APPLICATIONINSIGHTS_ENABLE_TELEMETRY', value: 'true' }
        // Not the distro's default of 5 traces a second: the app keeps every import's trace and creates
        // no other (shared/platform/observability.py, ImportSampler; README "What is sampled").
        { name: 'OTEL_TRACES_SAMPLER', value: 'parentbased_always_on' }
        { name: 'BLOB_TRIGGER_SOURCE', value: 'EventGrid' }
        { name: 'FEC_IMPORT_CONTAINER', value: importContainerName }
        { name: 'IMPORT_REPORT_CONTAINER', value: reportContainerName }
        { name: 'REPORTS_CONTAINER', value: reportsContainerName }
        { name: 'REPORT_LANGUAGE', value: reportLanguage }
        { name: 'REPORT_TIMEZONE', value: reportTimezone }
        { name: 'IMPORT_LEDGER_TABLE', value: ledgerTableName }
        { name: 'DOSSIER_MAP_TABLE', value: dossierTableName }
        { name: 'STATUS_POLL_SCHEDULE', value: statusPollSchedule }
        { name: 'LEDGER_PURGE_SCHEDULE', value: ledgerPurgeSchedule }
        { name: 'LEDGER_RETENTION_DAYS', value: '${ledgerRetentionDays}' }
        { name: 'STATUS_CHECK_QUEUE', value: statusCheckQueueName }
        { name: 'LOOP_API_BASE_URL', value: loopApiBaseUrl }
        { name: 'LOOP_STATUS_PATH', value: '/getImportStatus' }
        { name: 'SAS_TTL_HOURS', value: '24' }
        { name: 'LOOP_TRANSFER_MODE', value: loopTransferMode }
        // Versionless references: a rotated key is picked up without a redeployment.
        { name: 'LOOP_API_KEY', value: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${loopApiKeySecretName})' }
        { name: 'LOOP_SUBSCRIPTION_KEY', value: '@Microsoft.KeyVault(VaultName=${vault.name};SecretName=${loopSubscriptionKeySecretName})' }
      ]
    }
  }
  dependsOn: [importContainer, reportsContainer, otherContainers, tables, statusCheckQueue, storageRoles, vaultRole, monitoringRole]
}

// --- people: the deploying principal operates the pipeline; uploaders only drop files.

resource operatorVaultRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(principalId)) {
  name: guid(vault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: principalId
    principalType: principalType
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

resource operatorStorageRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for role in [roles.storageBlobDataContributor, roles.storageTableDataContributor]: if (!empty(principalId)) {
    name: guid(storage.id, principalId, role)
    scope: storage
    properties: {
      principalId: principalId
      principalType: principalType
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', role)
    }
  }
]

resource uploaderRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for uploader in uploaderPrincipalIds: {
    name: guid(importContainer.id, uploader, roles.storageBlobDataContributor)
    scope: importContainer
    properties: {
      principalId: uploader
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    }
  }
]

// Whoever drops files reads the reports of their files (Azure Storage Explorer, a script).
resource uploaderReportRoles 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for uploader in uploaderPrincipalIds: {
    name: guid(reportsContainer.id, uploader, roles.storageBlobDataReader)
    scope: reportsContainer
    properties: {
      principalId: uploader
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataReader)
    }
  }
]

// The subscription to BlobCreated is created by the postdeploy hook (infra/hooks/), once the
// function's blobs_extension key exists.
resource systemTopic 'Microsoft.EventGrid/systemTopics@2022-06-15' = {
  name: 'evgt-fec-${token}'
  location: location
  tags: tags
  properties: {
    source: storage.id
    topicType: 'Microsoft.Storage.StorageAccounts'
  }
}

output appInsightsId string = appInsights.id
output functionAppName string = app.name
output storageAccountName string = storage.name
output systemTopicName string = systemTopic.name
output importContainerName string = importContainer.name
output keyVaultName string = vault.name
output loopTransferMode string = loopTransferMode
