#!/bin/sh
# After `azd deploy`: subscribe the blob trigger to BlobCreated events of the import container.
# The webhook needs the blobs_extension system key, which the host creates only once the app has
# started with its blob trigger, hence a hook, and a wait for the key. Needs the Azure CLI (az).
set -eu
subscription="${AZURE_SUBSCRIPTION_ID:?azd sets AZURE_SUBSCRIPTION_ID; run azd provision first}"
app="${AZURE_FUNCTION_APP_NAME:?run azd provision first}"
group="${RESOURCE_GROUP:?run azd provision first}"
topic="${EVENT_GRID_SYSTEM_TOPIC_NAME:?run azd provision first}"
container="${FEC_IMPORT_CONTAINER:-api-import-ecrit}"
attempts="${FEC_KEY_WAIT_ATTEMPTS:-30}"   # 30 x 10 s: the first cold start of a new app can take minutes
interval="${FEC_KEY_WAIT_SECONDS:-10}"

command -v az >/dev/null 2>&1 || { echo "postdeploy: the Azure CLI (az) is required" >&2; exit 1; }

key=""
attempt=1
while [ "$attempt" -le "$attempts" ]; do
  # The call fails, or answers an empty key, while the host starts: the loop retries.
  key=$(az functionapp keys list --subscription "$subscription" -n "$app" -g "$group" \
    --query "systemKeys.blobs_extension" -o tsv 2>/dev/null || true)
  [ -n "$key" ] && break
  echo "postdeploy: waiting for the blobs_extension key of ${app} (attempt ${attempt}/${attempts})"
  attempt=$((attempt + 1))
  sleep "$interval"
done
if [ -z "$key" ]; then
  echo "postdeploy: no blobs_extension key on ${app} after ${attempts} attempts: check the app started" \
    "(az functionapp function list -n ${app} -g ${group} --subscription ${subscription} must list fec_blob_trigger)," \
    "then run azd hooks run postdeploy" >&2
  exit 1
fi

endpoint="https://${app}.azurewebsites.net/runtime/webhooks/blobs?functionName=Host.Functions.fec_blob_trigger&code=${key}"
az eventgrid system-topic event-subscription create \
  --subscription "$subscription" \
  --name fec-blob-trigger \
  --resource-group "$group" \
  --system-topic-name "$topic" \
  --endpoint "$endpoint" \
  --endpoint-type webhook \
  --included-event-types Microsoft.Storage.BlobCreated \
  --subject-begins-with "/blobServices/default/containers/${container}/" \
  --max-delivery-attempts 30 \
  --event-ttl 1440 -o none
echo "postdeploy: Event Grid subscription fec-blob-trigger -> ${app} (container ${container}, subscription ${subscription})"
