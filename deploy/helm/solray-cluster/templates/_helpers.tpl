{{- define "solray-cluster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* "<release>-<nameOverride>", as KubeRay's chart names its RayCluster. */}}
{{- define "solray-cluster.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "solray-cluster.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "solray-cluster.labels" -}}
app.kubernetes.io/name: {{ include "solray-cluster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "solray-cluster.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* The pod template of one group: (dict "root" $ "group" <values> "container" <name>). */}}
{{- define "solray-cluster.podTemplate" -}}
{{- $g := .group -}}
{{- $root := .root -}}
metadata:
  labels:
    {{- include "solray-cluster.labels" $root | nindent 4 }}
    {{- with $g.labels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $g.annotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  {{- with $root.Values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.serviceAccountName }}
  serviceAccountName: {{ . }}
  {{- end }}
  containers:
    - name: {{ .container }}
      image: {{ include "solray-cluster.image" $root }}
      imagePullPolicy: {{ $root.Values.image.pullPolicy }}
      {{- with $g.command }}
      command:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.args }}
      args:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- $env := concat ($root.Values.common.containerEnv | default list) ($g.containerEnv | default list) }}
      {{- with $env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.envFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml ($g.resources | default dict) | nindent 8 }}
      {{- with $g.volumeMounts }}
      volumeMounts:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $g.securityContext }}
      securityContext:
        {{- toYaml . | nindent 8 }}
      {{- end }}
    {{- with $g.sidecarContainers }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $g.volumes }}
  volumes:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $g.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end -}}

{{- define "solray-cluster.workerGroup" -}}
- groupName: {{ .name }}
  replicas: {{ .group.replicas | default 0 }}
  minReplicas: {{ .group.minReplicas | default 0 }}
  maxReplicas: {{ .group.maxReplicas | default 2147483647 }}
  rayStartParams:
    {{- toYaml (.group.rayStartParams | default dict) | nindent 4 }}
  template:
    {{- include "solray-cluster.podTemplate" (dict "root" .root "group" .group "container" "ray-worker") | nindent 4 }}
{{- end -}}
