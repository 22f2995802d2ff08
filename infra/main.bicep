// FEC -> Cegid Loop import pipeline on Azure: Flex Consumption, managed identity, Event Grid source.
// Subscription scope, as azd expects: this file creates the resource group and deploys everything
// else into it through modules/resources.bicep. Not compiled or deployed from the development
// machine (no Azure access there): see infra/README.md for what was and was not verified.
targetScope = 'subscription'

@minLength(1)
@maxLength(64)
@description('azd environment name, used to derive unique resource names')
param environmentName string

@minLength(1)
@description('Location of the resource group and of every resource')
param location string

@description('Resource group to create; empty: rg-<environmentName>')
param resourceGroupName string = ''

@description('Object id of the person or pipeline running azd (AZURE_PRINCIPAL_ID): Key Vault Secrets Officer, blob and table data roles. Empty: no role.')
param principalId string = ''

@allowed(['User', 'ServicePrincipal', 'Group'])
@description('Kind of principalId: User for a person, ServicePrincipal for a CI pipeline')
param principalType string = 'User'

@description('Comma-separated object ids of the users, groups or service principals allowed to upload FEC files (Storage Blob Data Contributor on the import container only)')
param uploaderPrincipalIds string = ''

@secure()
@description('Loop API key, "key:secret" (x-apikey). Empty: the Key Vault secret loop-api-key is left as it is (set it by hand).')
param loopApiKey string = ''

@secure()
@description('Loop APIM subscription key (Ocp-Apim-Subscription-Key). Empty: the secret loop-subscription-key is left as it is.')
param loopSubscriptionKey string = ''

@description('Loop public API base URL')
param loopApiBaseUrl string = 'https://api.cegid.com/loop-api-publiques'

@description('NCRONTAB schedule of the status timer (6 fields)')
param statusPollSchedule string = '0 */1 * * * *'

@minValue(30)
@description('LEDGER_RETENTION_DAYS: final imports, their rows and reports are deleted this many days after their last change')
param ledgerRetentionDays int = 400

@description('Off by default: delete dropped files tagged fecimport=completed completedFileRetentionDays after they were dropped')
param deleteCompletedFiles bool = false

@minValue(7)
@description('Days after which a completed dropped file is deleted, when deleteCompletedFiles is true')
param completedFileRetentionDays int = 90

@description('Most instances Flex Consumption may run: with host.json queues.batchSize 16 (+ newBatchThreshold 8), at most 24 status calls in flight per instance, so this caps the status calls in flight toward Loop at 24 x this value')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 40

@description('E-mail address the monitoring alerts are sent to (action group). Empty: no receiver.')
param alertEmail string = ''

@description('Close the storage account to public network access: private endpoints (blob, queue, table) with their private DNS zones, the Function App integrated in a virtual network, and LOOP_TRANSFER_MODE=deposit (Loop cannot download from a closed account). infra/README.md, "Private storage".')
param privateNetworking bool = false

@allowed(['sas', 'deposit'])
@description('How Loop gets each file (LOOP_TRANSFER_MODE): sas, Loop downloads it from this storage account through a SAS URL; deposit, the app uploads it to a URL Loop gives. privateNetworking=true always means deposit.')
param loopTransferMode string = 'sas'

var tags = { 'azd-env-name': environmentName }
var uploaders = empty(uploaderPrincipalIds) ? [] : split(replace(uploaderPrincipalIds, ' ', ''), ',')

resource group 'Microsoft.Resources/resourceGroups@2024-03-01' = {
  name: empty(resourceGroupName) ? 'rg-${environmentName}' : resourceGroupName
  location: location
  tags: tags
}

module resources 'modules/resources.bicep' = {
  name: 'fec-resources'
  scope: group
  params: {
    environmentName: environmentName
    location: location
    tags: tags
    principalId: principalId
    principalType: principalType
    uploaderPrincipalIds: uploaders
    loopApiKey: loopApiKey
    loopSubscriptionKey: loopSubscriptionKey
    loopApiBaseUrl: loopApiBaseUrl
    statusPollSchedule: statusPollSchedule
    ledgerRetentionDays: ledgerRetentionDays
    deleteCompletedFiles: deleteCompletedFiles
    completedFileRetentionDays: completedFileRetentionDays
    privateNetworking: privateNetworking
    loopTransferMode: privateNetworking ? 'deposit' : loopTransferMode
    maximumInstanceCount: maximumInstanceCount
  }
}

// Alerts, their action group and the workbook (docs/runbooks/ has one runbook per alert).
module monitoring 'modules/monitoring.bicep' = {
  name: 'fec-monitoring'
  scope: group
  params: {
    location: location
    tags: tags
    appInsightsId: resources.outputs.appInsightsId
    alertEmail: alertEmail
    nameToken: toLower(uniqueString(subscription().id, environmentName))
  }
}

output AZURE_LOCATION string = location
output AZURE_TENANT_ID string = tenant().tenantId
output RESOURCE_GROUP string = group.name
output AZURE_RESOURCE_GROUP string = group.name
output AZURE_FUNCTION_APP_NAME string = resources.outputs.functionAppName
output AZURE_STORAGE_ACCOUNT_NAME string = resources.outputs.storageAccountName
output EVENT_GRID_SYSTEM_TOPIC_NAME string = resources.outputs.systemTopicName
output FEC_IMPORT_CONTAINER string = resources.outputs.importContainerName
output AZURE_KEY_VAULT_NAME string = resources.outputs.keyVaultName
output LOOP_TRANSFER_MODE string = resources.outputs.loopTransferMode
