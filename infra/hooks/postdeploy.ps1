# After `azd deploy` (Windows): subscribe the blob trigger to BlobCreated events of the import
# container. Same steps as postdeploy.sh: wait for the blobs_extension system key, which exists only
# once the app has started, then create the Event Grid subscription. Needs the Azure CLI (az).
$ErrorActionPreference = 'Stop'

function Require([string] $name) {
    $value = [Environment]::GetEnvironmentVariable($name)
    if ([string]::IsNullOrWhiteSpace($value)) { throw "postdeploy: $name is not set; run azd provision first" }
    return $value
}

if (-not (Get-Command az -ErrorAction SilentlyContinue)) { throw 'postdeploy: the Azure CLI (az) is required' }
$subscription = Require 'AZURE_SUBSCRIPTION_ID'
$app = Require 'AZURE_FUNCTION_APP_NAME'
$group = Require 'RESOURCE_GROUP'
$topic = Require 'EVENT_GRID_SYSTEM_TOPIC_NAME'
$container = if ($env:FEC_IMPORT_CONTAINER) { $env:FEC_IMPORT_CONTAINER } else { 'api-import-ecrit' }
$attempts = if ($env:FEC_KEY_WAIT_ATTEMPTS) { [int]$env:FEC_KEY_WAIT_ATTEMPTS } else { 30 }
$interval = if ($env:FEC_KEY_WAIT_SECONDS) { [int]$env:FEC_KEY_WAIT_SECONDS } else { 10 }

$key = ''
for ($attempt = 1; $attempt -le $attempts; $attempt++) {
    # The calls fail while the host starts: their errors are expected here, the loop retries.
    $key = az functionapp keys list --subscription $subscription -n $app -g $group `
        --query 'systemKeys.blobs_extension' -o tsv 2>$null
    if ($LASTEXITCODE -eq 0 -and -not [string]::IsNullOrWhiteSpace($key)) { break }
    $key = ''
    Write-Host "postdeploy: waiting for the blobs_extension key of $app (attempt $attempt/$attempts)"
    Start-Sleep -Seconds $interval
}
if ([string]::IsNullOrWhiteSpace($key)) {
    throw ("postdeploy: no blobs_extension key on $app after $attempts attempts: check the app started " +
        "(az functionapp function list -n $app -g $group --subscription $subscription must list fec_blob_trigger), " +
        'then run azd hooks run postdeploy')
}

$endpoint = "https://$app.azurewebsites.net/runtime/webhooks/blobs?functionName=Host.Functions.fec_blob_trigger&code=$($key.Trim())"
# The endpoint holds '&': quoted for az, which PowerShell passes to a cmd script on Windows.
az eventgrid system-topic event-subscription create `
    --subscription $subscription `
    --name fec-blob-trigger `
    --resource-group $group `
    --system-topic-name $topic `
    --endpoint "`"$endpoint`"" `
    --endpoint-type webhook `
    --included-event-types Microsoft.Storage.BlobCreated `
    --subject-begins-with "/blobServices/default/containers/$container/" `
    --max-delivery-attempts 30 `
    --event-ttl 1440 -o none
if ($LASTEXITCODE -ne 0) { throw "postdeploy: creating the Event Grid subscription failed (exit code $LASTEXITCODE)" }
Write-Host "postdeploy: Event Grid subscription fec-blob-trigger -> $app (container $container, subscription $subscription)"
