{{/* Chart name, truncated to the 63 characters Kubernetes names allow. */}}
{{- define "stepup-idp.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Full name: the release name, plus the chart name unless the release already has it. */}}
{{- define "stepup-idp.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "stepup-idp.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stepup-idp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stepup-idp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* The server pods (not the migration Job's): what the Service and the PDB select. */}}
{{- define "stepup-idp.serverSelectorLabels" -}}
{{ include "stepup-idp.selectorLabels" . }}
app.kubernetes.io/component: server
{{- end -}}

{{- define "stepup-idp.labels" -}}
helm.sh/chart: {{ include "stepup-idp.chart" . }}
{{ include "stepup-idp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "stepup-idp.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stepup-idp.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "stepup-idp.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The Secret with IDP_SECRET_KEY (and, unless overridden, the database and Redis URLs). */}}
{{- define "stepup-idp.secretName" -}}
{{- if .Values.secrets.create -}}
{{- printf "%s-secrets" (include "stepup-idp.fullname" .) -}}
{{- else -}}
{{- default (include "stepup-idp.fullname" .) .Values.secrets.existingSecret -}}
{{- end -}}
{{- end -}}

{{/* One Redis store is shared by every worker and replica: refuse layouts that need one. */}}
{{- define "stepup-idp.checkRedis" -}}
{{- if not .Values.redis.enabled -}}
{{- if or (gt (int .Values.replicaCount) 1) (gt (int .Values.server.workers) 1) .Values.autoscaling.enabled -}}
{{- fail "redis.enabled=false allows one replica with one worker only (replicaCount=1, server.workers=1, autoscaling.enabled=false): the in-process store is not shared" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Environment shared by the server pods and the migration Job. */}}
{{- define "stepup-idp.env" -}}
- name: IDP_ISSUER
  value: {{ .Values.issuer | quote }}
- name: IDP_ENVIRONMENT
  value: {{ .Values.environment | quote }}
- name: IDP_CONFIG
  value: /etc/stepup-idp/config.yaml
- name: IDP_INSTANCE_PATH
  value: /tmp/idp
- name: IDP_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "stepup-idp.secretName" . }}
      key: {{ .Values.secrets.keys.secretKey }}
- name: IDP_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (include "stepup-idp.secretName" .) .Values.database.existingSecret }}
      key: {{ default .Values.secrets.keys.databaseUrl .Values.database.existingSecretKey }}
{{- if .Values.redis.enabled }}
- name: IDP_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ default (include "stepup-idp.secretName" .) .Values.redis.existingSecret }}
      key: {{ default .Values.secrets.keys.redisUrl .Values.redis.existingSecretKey }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "stepup-idp.volumes" -}}
- name: config
  configMap:
    name: {{ include "stepup-idp.fullname" . }}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpVolume.sizeLimit }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "stepup-idp.volumeMounts" -}}
- name: config
  mountPath: /etc/stepup-idp
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}
