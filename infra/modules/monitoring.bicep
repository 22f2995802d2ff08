// What ops are told, and what they look at: log alerts on the app's own events and metrics, an
// action group that e-mails them, and a workbook. Every query reads Application Insights tables
// (traces: the import.* events with their customDimensions; customMetrics: the fec.* metrics) and
// is also in docs/runbooks/, with what it means and the `python -m shared imports ...` commands
// that fix it. tests/test_telemetry_export.py checks every name used here against real envelopes.
targetScope = 'resourceGroup'

param location string
param tags object
@description('Application Insights resource the alerts and the workbook read')
param appInsightsId string
@description('Where alerts are e-mailed; empty: the action group has no receiver (add one in the portal)')
param alertEmail string
param nameToken string

// One row per event, for the simple alerts: each fires when at least one row appears in 15 minutes.
var eventRows = '''
| project timestamp, event = tostring(customDimensions.event), blob = tostring(customDimensions.blob),
    codeIbs = tostring(customDimensions.codeIbs), requestId = tostring(customDimensions.requestId),
    state = tostring(customDimensions.state), reason = tostring(customDimensions.reason)
'''

var alerts = [
  {
    name: 'import-failed'
    severity: 2
    title: 'FEC imports failed'
    description: 'Loop finished an import with status 4, or refused it (docs/runbooks/import-failed.md)'
    query: '''
traces
| where tostring(customDimensions.event) in ("import.failed", "import.submit_failed")
'''
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'auth-failed'
    severity: 1
    title: 'Loop refused the keys'
    description: 'importFEC or the status call answered 401/403 (docs/runbooks/auth-failed.md)'
    query: '''
traces
| where tostring(customDimensions.event) == "import.auth_failed"
'''
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'outcome-unknown'
    severity: 2
    title: 'FEC import outcome unknown'
    description: 'An importFEC may have reached Loop without an answer; an operator decides (docs/runbooks/outcome-unknown.md)'
    query: '''
traces
| where tostring(customDimensions.event) == "import.outcome_unknown"
'''
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'stale-or-sas-expiring'
    severity: 3
    title: 'FEC import stale, or its SAS URL expiring'
    description: 'Pending at Loop for too long, or the download link is about to expire (docs/runbooks/stale-or-sas-expiring.md)'
    query: '''
traces
| where tostring(customDimensions.event) in ("import.stale", "import.sas_expiring")
'''
    operator: 'GreaterThan'
    threshold: 0
  }
  {
    name: 'report-given-up'
    severity: 3
    title: 'FEC report next to a file given up'
    description: 'A report next to a dropped file could not be written after its retries; the import itself is unaffected (docs/runbooks/report-given-up.md)'
    query: '''
traces
| where tostring(customDimensions.event) == "import.report_given_up"
'''
    operator: 'GreaterThan'
    threshold: 0
  }
]

resource actionGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: 'ag-fec-${nameToken}'
  location: 'global'
  tags: tags
  properties: {
    groupShortName: 'fec-ops'
    enabled: true
    emailReceivers: empty(alertEmail) ? [] : [
      { name: 'ops', emailAddress: alertEmail, useCommonAlertSchema: true }
    ]
  }
}

resource eventAlerts 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = [
  for alert in alerts: {
    name: 'alert-fec-${alert.name}-${nameToken}'
    location: location
    tags: tags
    properties: {
      displayName: alert.title
      description: alert.description
      severity: alert.severity
      enabled: true
      scopes: [appInsightsId]
      evaluationFrequency: 'PT5M'
      windowSize: 'PT15M'
      criteria: {
        allOf: [
          {
            query: '${alert.query}${eventRows}'
            timeAggregation: 'Count'
            operator: alert.operator
            threshold: alert.threshold
            failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
          }
        ]
      }
      autoMitigate: true
      actions: { actionGroups: [actionGroup.id] }
    }
  }
]

// A version whose deliveries keep failing before any POST: after host.json's poisonBlobThreshold (5)
// the host stops retrying it (a poison blob).
resource poisonAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-fec-poison-${nameToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'FEC blob deliveries keep failing (poison)'
    description: 'The same blob version failed 5 deliveries or more in an hour (docs/runbooks/poison-blob.md)'
    severity: 2
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT15M'
    windowSize: 'PT1H'
    criteria: {
      allOf: [
        {
          query: '''
traces
| where tostring(customDimensions.event) in ("import.attempt_failed", "import.submit_retry")
| summarize failures = count(), lastReason = take_any(tostring(customDimensions.reason))
    by blob = tostring(customDimensions.blob), etag = tostring(customDimensions.etag)
| where failures >= 5
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: [actionGroup.id] }
  }
}

// The timer records fec.poll.tick.duration on every tick: none for 15 minutes means it stopped.
resource timerAlert 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: 'alert-fec-timer-stopped-${nameToken}'
  location: location
  tags: tags
  properties: {
    displayName: 'FEC status timer stopped'
    description: 'No timer tick for 15 minutes: nothing is followed at Loop (docs/runbooks/timer-stopped.md)'
    severity: 1
    enabled: true
    scopes: [appInsightsId]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT15M'
    criteria: {
      allOf: [
        {
          query: '''
customMetrics
| where name == "fec.poll.tick.duration"
'''
          timeAggregation: 'Count'
          operator: 'LessThan'
          threshold: 1
          failingPeriods: { numberOfEvaluationPeriods: 1, minFailingPeriodsToAlert: 1 }
        }
      ]
    }
    autoMitigate: true
    actions: { actionGroups: [actionGroup.id] }
  }
}

var importsByState = '''
traces
| where tostring(customDimensions.event) startswith "import."
| summarize imports = dcount(strcat(tostring(customDimensions.blob), tostring(customDimensions.etag)))
    by state = tostring(customDimensions.state), bin(timestamp, 1h)
| render timechart
'''
var failuresByReason = '''
traces
| where tostring(customDimensions.event) in ("import.rejected", "import.failed", "import.submit_failed", "import.auth_failed")
| summarize failures = count() by codeIbs = tostring(customDimensions.codeIbs), reason = tostring(customDimensions.reason)
| order by failures desc
'''
var pendingAge = '''
customMetrics
| where name in ("fec.imports.pending", "fec.imports.pending.oldest_age")
| summarize value = max(value) by name, bin(timestamp, 5m)
| render timechart
'''
var loopLatency = '''
customMetrics
| where name == "fec.loop.duration"
| summarize seconds = sum(valueSum) / sum(valueCount), calls = sum(valueCount)
    by operation = tostring(customDimensions.operation), result = tostring(customDimensions.result), bin(timestamp, 15m)
| render timechart
'''

var workbookItems = [
  { title: 'Imports by state', query: importsByState, size: 0 }
  { title: 'Failures by dossier and reason', query: failuresByReason, size: 0 }
  { title: 'Pending imports and age of the oldest (s)', query: pendingAge, size: 0 }
  { title: 'Loop latency (s) by operation and result', query: loopLatency, size: 0 }
]

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'fec-import-workbook', nameToken)
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'FEC imports'
    category: 'workbook'
    sourceId: appInsightsId
    serializedData: string({
      version: 'Notebook/1.0'
      items: [
        for (item, index) in workbookItems: {
          type: 3
          name: 'query-${index}'
          content: {
            version: 'KqlItem/1.0'
            title: item.title
            query: item.query
            size: item.size
            timeContext: { durationMs: 86400000 }
            queryType: 0
            resourceType: 'microsoft.insights/components'
          }
        }
      ]
    })
  }
}

output actionGroupId string = actionGroup.id
output workbookId string = workbook.id
