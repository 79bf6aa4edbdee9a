// Validates Kubernetes manifests offline against the API schemas shipped in kubernetes-models:
// types, required fields and formats through the package's validators, and unknown fields
// (which those validators let through, as kubectl --validate=strict would not) by walking
// each object along the property lists of the package's type declarations.
//
// usage: node validate_manifests.mjs DIR   (every *.yaml in DIR; kustomization.yaml is
// checked to list exactly the other files)
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";
import YAML from "yaml";

const require = createRequire(import.meta.url);
const modelsDir = path.dirname(require.resolve("kubernetes-models/package.json"));
const nodeModules = path.dirname(modelsDir);

function modelPath(apiVersion, kind) {
  const group = apiVersion.includes("/") ? apiVersion : `${apiVersion}`;
  return path.join(modelsDir, group, kind);
}

// Interface properties of one .d.ts: name -> { type, imports } (cached per file).
const declarations = new Map();
function readDeclaration(file) {
  if (declarations.has(file)) return declarations.get(file);
  const text = fs.readFileSync(file, "utf8");
  const imports = new Map();
  for (const m of text.matchAll(/import \{ ([^}]+) \} from "([^"]+)";/g)) {
    for (const name of m[1].split(",").map((s) => s.trim())) imports.set(name, m[2]);
  }
  const body = text.match(/export interface I\w+(?: extends [\w, ]+)? \{\n([\s\S]*?)\n\}/);
  const properties = new Map();
  if (body) {
    // Comments dropped and whitespace collapsed, so map types spread over lines read as one.
    const flat = body[1].replace(/\/\*[\s\S]*?\*\//g, "").replace(/\s+/g, " ");
    for (const m of flat.matchAll(/"([^"]+)"\??: (\{[^{}]*\}|[^;{]+);/g)) properties.set(m[1], m[2].trim());
  }
  const result = { properties, imports, dir: path.dirname(file), isInterface: Boolean(body) };
  declarations.set(file, result);
  return result;
}

function resolveImport(fromDir, spec) {
  const base = spec.startsWith(".") ? path.join(fromDir, spec) : path.join(nodeModules, spec);
  return base.replace(/\.js$/, "") + ".d.ts";
}

// Reports every key not in the schema, following nested model types.
function unknownFields(value, declFile, where, problems) {
  const decl = readDeclaration(declFile);
  if (!decl.isInterface || value === null || typeof value !== "object" || Array.isArray(value)) return;
  for (const [key, child] of Object.entries(value)) {
    const type = decl.properties.get(key);
    if (type === undefined) {
      problems.push(`${where}.${key}: unknown field`);
      continue;
    }
    const mapOf = type.match(/^\{ ?\[key: string\]: (\w+); ?\}$/);
    const arrayOf = type.match(/^Array<(I\w+)>$/);
    const named = type.match(/^(I\w+)$/);
    const typeName = (mapOf || arrayOf || named || [])[1];
    if (!typeName || !decl.imports.has(typeName)) continue;
    const childFile = resolveImport(decl.dir, decl.imports.get(typeName));
    if (!fs.existsSync(childFile)) {
      problems.push(`${where}.${key}: no schema declaration ${childFile}`);
      continue;
    }
    if (arrayOf && Array.isArray(child)) {
      child.forEach((item, i) => unknownFields(item, childFile, `${where}.${key}[${i}]`, problems));
    } else if (mapOf && child && typeof child === "object") {
      for (const [k, v] of Object.entries(child)) unknownFields(v, childFile, `${where}.${key}.${k}`, problems);
    } else if (named) {
      unknownFields(child, childFile, `${where}.${key}`, problems);
    }
  }
}

async function validateDocument(doc, where, problems) {
  const { apiVersion, kind } = doc ?? {};
  if (!apiVersion || !kind) {
    problems.push(`${where}: no apiVersion/kind`);
    return;
  }
  const base = modelPath(apiVersion, kind);
  if (!fs.existsSync(`${base}.js`)) {
    problems.push(`${where}: ${apiVersion} ${kind} is not a known Kubernetes kind`);
    return;
  }
  const Model = (await import(`${base}.js`))[kind];
  try {
    new Model(doc).validate();
  } catch (e) {
    problems.push(`${where}: ${e.message}`);
  }
  if (!readDeclaration(`${base}.d.ts`).isInterface) problems.push(`${where}: cannot read the ${kind} declaration`);
  unknownFields(doc, `${base}.d.ts`, where, problems);
}

async function main() {
  const dir = process.argv[2];
  const files = fs.readdirSync(dir).filter((f) => f.endsWith(".yaml")).sort();
  const problems = [];
  let checked = 0;
  const manifests = files.filter((f) => f !== "kustomization.yaml");
  for (const file of manifests) {
    const docs = YAML.parseAllDocuments(fs.readFileSync(path.join(dir, file), "utf8"));
    for (const [i, parsed] of docs.entries()) {
      if (parsed.errors.length) {
        problems.push(`${file}: ${parsed.errors[0].message}`);
        continue;
      }
      const doc = parsed.toJS();
      if (doc === null) continue;
      await validateDocument(doc, `${file}#${i} ${doc.kind}/${doc.metadata?.name}`, problems);
      checked++;
    }
  }
  if (files.includes("kustomization.yaml")) {
    const kustomization = YAML.parse(fs.readFileSync(path.join(dir, "kustomization.yaml"), "utf8"));
    const listed = [...(kustomization.resources ?? [])].sort();
    if (JSON.stringify(listed) !== JSON.stringify(manifests)) {
      problems.push(`kustomization.yaml lists ${listed.join(", ")}, the directory holds ${manifests.join(", ")}`);
    }
  }
  for (const p of problems) console.log(`FAIL: ${p}`);
  console.log(`${checked} manifests checked, ${problems.length} problems`);
  process.exit(problems.length || checked === 0 ? 1 : 0);
}

await main();
