// helm_render renders a Helm v3 chart as `helm template` would, offline, for the tests of
// deploy/helm/snisplice: Helm is not packaged in Debian, but its template engine is
// text/template plus sprig, which are. It follows Helm 3's pkg/engine and pkg/chartutil:
//
//   - Chart.yaml (apiVersion v2, name, SemVer version) is .Chart; its kubeVersion constraint
//     is checked against .Capabilities.KubeVersion.
//   - .Values: values.yaml, then each -f file, then each --set, deep-merged (maps merge, a null
//     deletes the key). --set takes comma-separated key.path=value pairs ("\." for a dot
//     inside a key) typed as Helm's strvals types them (true/false, null, integers without a
//     leading zero, else strings).
//   - .Release (Name, Namespace, Service "Helm", IsInstall true, IsUpgrade false, Revision 1),
//     .Capabilities (KubeVersion, APIVersions.Has, HelmVersion), .Template (Name, BasePath).
//   - Every file under templates/ is parsed into one template set, executed with
//     missingkey=zero and "<no value>" removed; files whose name starts with "_" only hold
//     definitions; NOTES.txt is executed (so its errors count) and printed only with --notes.
//   - Functions: sprig's TxtFuncMap without env and expandenv, and Helm's include, tpl,
//     required, toYaml, fromYaml and toJson (sprig provides fail).
//   - Output: each file split into documents on "---", empty ones dropped, each parsed as
//     YAML, sorted by kind in Helm's install order, printed as "---\n# Source: ...\n<doc>".
//
// Not implemented: subcharts and dependencies, library charts, .Files, crds/, hooks,
// values.schema.json, .helmignore, lookup, toToml and the from*Array/fromJson functions,
// --set list indices, escaped commas and --set-string/--set-file variants, strict mode.
//
// usage: helm_render [--namespace NS] [--kube-version V] [-f FILE]... [--set K=V,...]... [--notes] NAME CHART_DIR
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"text/template"

	"github.com/Masterminds/semver"
	"github.com/Masterminds/sprig"
	"sigs.k8s.io/yaml"
)

// chartMetadata is Chart.yaml, with the field names templates use (.Chart.Name, ...).
type chartMetadata struct {
	APIVersion   string            `json:"apiVersion"`
	Name         string            `json:"name"`
	Version      string            `json:"version"`
	KubeVersion  string            `json:"kubeVersion,omitempty"`
	Description  string            `json:"description,omitempty"`
	Type         string            `json:"type,omitempty"`
	Keywords     []string          `json:"keywords,omitempty"`
	Home         string            `json:"home,omitempty"`
	Sources      []string          `json:"sources,omitempty"`
	Maintainers  []maintainer      `json:"maintainers,omitempty"`
	Icon         string            `json:"icon,omitempty"`
	AppVersion   string            `json:"appVersion,omitempty"`
	Deprecated   bool              `json:"deprecated,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Dependencies []interface{}     `json:"dependencies,omitempty"`
}

type maintainer struct {
	Name  string `json:"name"`
	Email string `json:"email,omitempty"`
	URL   string `json:"url,omitempty"`
}

type kubeVersion struct{ Version, Major, Minor string }

func (k kubeVersion) String() string     { return k.Version }
func (k kubeVersion) GitVersion() string { return k.Version }

type versionSet []string

func (s versionSet) Has(v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

type capabilities struct {
	KubeVersion kubeVersion
	APIVersions versionSet
	HelmVersion map[string]string
}

// installOrder is Helm's releaseutil.InstallOrder: kinds not listed go last.
var installOrder = []string{
	"PriorityClass", "Namespace", "NetworkPolicy", "ResourceQuota", "LimitRange", "PodSecurityPolicy",
	"PodDisruptionBudget", "ServiceAccount", "Secret", "SecretList", "ConfigMap", "StorageClass",
	"PersistentVolume", "PersistentVolumeClaim", "CustomResourceDefinition", "ClusterRole",
	"ClusterRoleList", "ClusterRoleBinding", "ClusterRoleBindingList", "Role", "RoleList", "RoleBinding",
	"RoleBindingList", "Service", "DaemonSet", "Pod", "ReplicationController", "ReplicaSet", "Deployment",
	"HorizontalPodAutoscaler", "StatefulSet", "Job", "CronJob", "IngressClass", "Ingress", "APIService",
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, " ") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func main() {
	namespace := flag.String("namespace", "default", "the release namespace")
	kubeVer := flag.String("kube-version", "v1.30.0", "the Kubernetes version .Capabilities reports")
	notes := flag.Bool("notes", false, "print the rendered NOTES.txt after the manifests")
	var valueFiles, sets multiFlag
	flag.Var(&valueFiles, "f", "a values file merged over values.yaml (repeatable)")
	flag.Var(&sets, "set", "key.path=value[,key.path=value] merged over the values (repeatable)")
	flag.Parse()
	if flag.NArg() != 2 {
		fmt.Fprintln(os.Stderr, "usage: helm_render [--namespace NS] [--kube-version V] [-f FILE]... [--set K=V]... [--notes] NAME CHART_DIR")
		os.Exit(2)
	}
	out, err := render(flag.Arg(0), *namespace, *kubeVer, flag.Arg(1), valueFiles, sets, *notes)
	if err != nil {
		fmt.Fprintln(os.Stderr, "Error:", err)
		os.Exit(1)
	}
	os.Stdout.WriteString(out)
}

func render(release, namespace, kubeVer, chartDir string, valueFiles, sets []string, notes bool) (string, error) {
	chart, err := loadChart(chartDir)
	if err != nil {
		return "", err
	}
	caps, err := makeCapabilities(kubeVer)
	if err != nil {
		return "", err
	}
	if chart.KubeVersion != "" {
		constraint, err := semver.NewConstraint(chart.KubeVersion)
		if err != nil {
			return "", fmt.Errorf("Chart.yaml kubeVersion %q: %w", chart.KubeVersion, err)
		}
		if !constraint.Check(semver.MustParse(kubeVer)) {
			return "", fmt.Errorf("chart requires kubeVersion: %s which is incompatible with Kubernetes %s", chart.KubeVersion, kubeVer)
		}
	}
	values, err := loadValues(chartDir, valueFiles, sets)
	if err != nil {
		return "", err
	}
	top := map[string]interface{}{
		"Values": values,
		"Chart":  chart,
		"Release": map[string]interface{}{
			"Name": release, "Namespace": namespace, "Service": "Helm",
			"IsInstall": true, "IsUpgrade": false, "Revision": 1,
		},
		"Capabilities": caps,
	}
	rendered, err := execute(chart.Name, chartDir, top)
	if err != nil {
		return "", err
	}
	notesName := chart.Name + "/templates/NOTES.txt"
	notesText, hasNotes := rendered[notesName]
	delete(rendered, notesName)
	out, err := manifestStream(rendered)
	if notes && hasNotes {
		out += fmt.Sprintf("---\n# Source: %s\n%s\n", notesName, notesText)
	}
	return out, err
}

func loadChart(dir string) (*chartMetadata, error) {
	data, err := os.ReadFile(filepath.Join(dir, "Chart.yaml"))
	if err != nil {
		return nil, err
	}
	var chart chartMetadata
	if err := yaml.UnmarshalStrict(data, &chart); err != nil {
		return nil, fmt.Errorf("Chart.yaml: %w", err)
	}
	switch {
	case chart.APIVersion != "v2":
		return nil, fmt.Errorf("Chart.yaml: apiVersion %q, Helm 3 charts are v2", chart.APIVersion)
	case chart.Name == "":
		return nil, errors.New("Chart.yaml: name is required")
	case chart.Type != "" && chart.Type != "application":
		return nil, fmt.Errorf("Chart.yaml: type %q cannot be rendered", chart.Type)
	case len(chart.Dependencies) != 0:
		return nil, errors.New("Chart.yaml: dependencies are not implemented by this renderer")
	}
	if _, err := semver.StrictNewVersion(chart.Version); err != nil {
		return nil, fmt.Errorf("Chart.yaml: version %q is not SemVer 2: %w", chart.Version, err)
	}
	return &chart, nil
}

func makeCapabilities(v string) (capabilities, error) {
	parsed, err := semver.NewVersion(v)
	if err != nil {
		return capabilities{}, fmt.Errorf("--kube-version %q: %w", v, err)
	}
	return capabilities{
		KubeVersion: kubeVersion{
			Version: "v" + parsed.String(),
			Major:   strconv.FormatUint(parsed.Major(), 10),
			Minor:   strconv.FormatUint(parsed.Minor(), 10),
		},
		APIVersions: versionSet{"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1",
			"rbac.authorization.k8s.io/v1", "apps/v1/DaemonSet", "v1/ConfigMap"},
		HelmVersion: map[string]string{"Version": "v3"},
	}, nil
}

// loadValues reads numbers as float64, through JSON, as Helm's chartutil.ReadValues does.
func loadValues(chartDir string, valueFiles, sets []string) (map[string]interface{}, error) {
	values := map[string]interface{}{}
	for _, file := range append([]string{filepath.Join(chartDir, "values.yaml")}, valueFiles...) {
		data, err := os.ReadFile(file)
		if err != nil {
			return nil, err
		}
		var layer map[string]interface{}
		if err := yaml.Unmarshal(data, &layer); err != nil {
			return nil, fmt.Errorf("%s: %w", file, err)
		}
		mergeValues(values, layer)
	}
	for _, set := range sets {
		for _, pair := range strings.Split(set, ",") {
			key, value, ok := strings.Cut(pair, "=")
			if !ok || key == "" {
				return nil, fmt.Errorf("--set %q: expected key.path=value", pair)
			}
			layer := map[string]interface{}{}
			node := layer
			parts := splitKey(key)
			for _, part := range parts[:len(parts)-1] {
				child := map[string]interface{}{}
				node[part] = child
				node = child
			}
			node[parts[len(parts)-1]] = typedValue(value)
			mergeValues(values, layer)
		}
	}
	return values, nil
}

// splitKey splits a --set key on the dots not escaped as "\.".
func splitKey(key string) []string {
	parts := []string{""}
	for i := 0; i < len(key); i++ {
		switch {
		case key[i] == '\\' && i+1 < len(key) && key[i+1] == '.':
			parts[len(parts)-1] += "."
			i++
		case key[i] == '.':
			parts = append(parts, "")
		default:
			parts[len(parts)-1] += key[i : i+1]
		}
	}
	return parts
}

// typedValue types a --set value as Helm's strvals.typedVal does.
func typedValue(v string) interface{} {
	switch strings.ToLower(v) {
	case "true":
		return true
	case "false":
		return false
	case "null":
		return nil
	}
	if v == "0" {
		return int64(0)
	}
	if !strings.HasPrefix(v, "0") {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			return n
		}
	}
	return v
}

// mergeValues merges src into dst: maps deeply, anything else replaced, null deletes.
func mergeValues(dst, src map[string]interface{}) {
	for k, v := range src {
		if v == nil {
			delete(dst, k)
			continue
		}
		if srcMap, ok := v.(map[string]interface{}); ok {
			if dstMap, ok := dst[k].(map[string]interface{}); ok {
				mergeValues(dstMap, srcMap)
				continue
			}
		}
		dst[k] = v
	}
}

// helmFuncs binds Helm's own functions to the template set t.
func helmFuncs(t *template.Template) template.FuncMap {
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	depth := map[string]int{}
	funcs["include"] = func(name string, data interface{}) (string, error) {
		if depth[name] > 1000 {
			return "", fmt.Errorf("rendering template has a nested reference name: %s", name)
		}
		depth[name]++
		defer func() { depth[name]-- }()
		var buf bytes.Buffer
		err := t.ExecuteTemplate(&buf, name, data)
		return buf.String(), err
	}
	funcs["tpl"] = func(text string, data interface{}) (string, error) {
		clone, err := t.Clone()
		if err != nil {
			return "", err
		}
		name := "tpl"
		if top, ok := data.(map[string]interface{}); ok {
			if tmpl, ok := top["Template"].(map[string]interface{}); ok {
				name, _ = tmpl["Name"].(string)
			}
		}
		parsed, err := clone.New(name).Parse(text)
		if err != nil {
			return "", fmt.Errorf("cannot parse template %q: %w", text, err)
		}
		var buf bytes.Buffer
		if err := parsed.Execute(&buf, data); err != nil {
			return "", fmt.Errorf("error during tpl function execution for %q: %w", text, err)
		}
		return strings.ReplaceAll(buf.String(), "<no value>", ""), nil
	}
	funcs["required"] = func(message string, value interface{}) (interface{}, error) {
		if s, isString := value.(string); value == nil || (isString && s == "") {
			return value, errors.New(message)
		}
		return value, nil
	}
	funcs["toYaml"] = func(v interface{}) string {
		data, err := yaml.Marshal(v)
		if err != nil {
			return "" // Helm swallows the error inside a template
		}
		return strings.TrimSuffix(string(data), "\n")
	}
	funcs["fromYaml"] = func(text string) map[string]interface{} {
		m := map[string]interface{}{}
		if err := yaml.Unmarshal([]byte(text), &m); err != nil {
			m["Error"] = err.Error()
		}
		return m
	}
	funcs["toJson"] = func(v interface{}) string {
		data, err := json.Marshal(v)
		if err != nil {
			return ""
		}
		return string(data)
	}
	return funcs
}

// execute renders every template file; the result maps "<chart>/templates/<path>" to text.
func execute(chartName, chartDir string, top map[string]interface{}) (map[string]string, error) {
	templatesDir := filepath.Join(chartDir, "templates")
	root := template.New(chartName).Option("missingkey=zero")
	root.Funcs(helmFuncs(root))
	var names []string
	err := filepath.WalkDir(templatesDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		text, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(chartDir, path)
		name := chartName + "/" + filepath.ToSlash(rel)
		if _, err := root.New(name).Parse(string(text)); err != nil {
			return err
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	rendered := map[string]string{}
	for _, name := range names {
		if strings.HasPrefix(filepath.Base(name), "_") {
			continue
		}
		vals := map[string]interface{}{}
		for k, v := range top {
			vals[k] = v
		}
		vals["Template"] = map[string]interface{}{"Name": name, "BasePath": chartName + "/templates"}
		var buf bytes.Buffer
		if err := root.ExecuteTemplate(&buf, name, vals); err != nil {
			return nil, err
		}
		rendered[name] = strings.ReplaceAll(buf.String(), "<no value>", "")
	}
	return rendered, nil
}

var documentSeparator = regexp.MustCompile(`(?:^|\s*\n)---\s*`)

type manifest struct {
	source, kind, content string
}

func manifestStream(rendered map[string]string) (string, error) {
	sources := make([]string, 0, len(rendered))
	for name := range rendered {
		sources = append(sources, name)
	}
	sort.Strings(sources)
	var manifests []manifest
	for _, source := range sources {
		for _, doc := range documentSeparator.Split(rendered[source], -1) {
			doc = strings.TrimSpace(doc)
			if doc == "" {
				continue
			}
			var head struct {
				Kind string `json:"kind"`
			}
			if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
				return "", fmt.Errorf("YAML parse error on %s: %w", source, err)
			}
			manifests = append(manifests, manifest{source, head.Kind, doc})
		}
	}
	rank := func(kind string) int {
		for i, k := range installOrder {
			if k == kind {
				return i
			}
		}
		return len(installOrder)
	}
	sort.SliceStable(manifests, func(i, j int) bool { return rank(manifests[i].kind) < rank(manifests[j].kind) })
	var out strings.Builder
	for _, m := range manifests {
		fmt.Fprintf(&out, "---\n# Source: %s\n%s\n", m.source, m.content)
	}
	return out.String(), nil
}
