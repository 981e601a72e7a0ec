import { Alert, Anchor, Button, Center, Group, Loader, Select, Stack, Text, Title } from "@mantine/core";
import { useCallback, useEffect, useState } from "react";
import { ApiError, api, call, can } from "../api/client";
import { MapView } from "../components/twin/MapView";
import { ModelView } from "../components/twin/ModelView";
import { OeeView } from "../components/twin/OeeView";
import { TimelineView } from "../components/twin/TimelineView";
import { WhatIfView } from "../components/twin/WhatIfView";
import type { Line } from "../lib/machines";
import { navigate } from "../lib/router";
import { useSession } from "../lib/session";
import { type LineModelDoc, twin } from "../lib/twin";

export const VIEWS = [
  { path: "map", label: "Line map" },
  { path: "timeline", label: "State timeline" },
  { path: "oee", label: "OEE" },
  { path: "whatif", label: "What-if" },
  { path: "model", label: "Model" },
] as const;
export type View = (typeof VIEWS)[number]["path"];

const KEY = "linewatch.line";

/** The digital twin of a line: the line map live, each machine's state timeline, OEE with its losses, what-if
 * simulations, and the line model they all come from. Routes: #/line/<line>/<view>?query. */
export default function LinePage({ parts, query }: { parts: string[]; query: URLSearchParams }) {
  const { me, stream } = useSession();
  const engineer = can(me.role, "engineer");
  const [lines, setLines] = useState<Line[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const line = parts[1] ? decodeURIComponent(parts[1]) : null;
  const view = (VIEWS.find((v) => v.path === parts[2])?.path ?? "map") as View;
  const [doc, setDoc] = useState<LineModelDoc | null | undefined>(undefined); // null: no model yet
  const [modelError, setModelError] = useState<string | null>(null);

  useEffect(() => {
    call(api.GET("/api/v1/lines")).then(
      (l) => {
        setLines(l);
        setError(null);
      },
      (e: Error) => setError(e.message),
    );
  }, []);

  // no line in the route: the one chosen last time, or the first
  useEffect(() => {
    if (line || !lines?.length) return;
    const saved = localStorage.getItem(KEY);
    const pick = lines.find((l) => l.name === saved)?.name ?? lines[0].name;
    navigate(`/line/${encodeURIComponent(pick)}/${view}`, true);
  }, [line, lines, view]);

  const loadModel = useCallback(async () => {
    if (!line) return;
    try {
      setDoc(await twin.getModel(line));
      setModelError(null);
    } catch (e) {
      if (e instanceof ApiError && e.status === 404) {
        setDoc(null);
        setModelError(null);
      } else setModelError((e as Error).message);
    }
  }, [line]);
  // another engineer stored or deleted the model: reload it
  useEffect(() => {
    const onModel = (e: { line: string }) => {
      if (e.line === line) loadModel();
    };
    stream.twinModels.add(onModel);
    return () => {
      stream.twinModels.delete(onModel);
    };
  }, [stream, line, loadModel]);
  useEffect(() => {
    setDoc(undefined);
    if (line) localStorage.setItem(KEY, line);
    loadModel();
  }, [line, loadModel]);

  const go = (l: string | null, v: View = view) => l && navigate(`/line/${encodeURIComponent(l)}/${v}`);

  let body: React.ReactNode = null;
  if (error) body = <Alert color="red" title="The lines could not be loaded">{error}</Alert>;
  else if (lines && lines.length === 0)
    body = (
      <Alert color="blue" title="No line yet" data-testid="no-lines">
        The twin works on the lines of the machines' definitions.{" "}
        {engineer ? (
          <>
            Create a line on the <Anchor href="#/machines" c="blue.9" fw={600}>Machines</Anchor> page (or import a definitions file), then upload its line model here.
          </>
        ) : (
          "An engineer creates lines and uploads their line models."
        )}
      </Alert>
    );
  else if (!line || !lines || doc === undefined) {
    body = modelError ? (
      <Alert color="red" title="The line model could not be loaded">
        <Text size="sm" mb="xs">
          {modelError}
        </Text>
        <Button size="xs" onClick={loadModel}>
          Try again
        </Button>
      </Alert>
    ) : (
      <Center p="xl">
        <Loader aria-label="Loading the line" />
      </Center>
    );
  } else if (view === "model") body = <ModelView line={line} doc={doc} onSaved={setDoc} />;
  else if (doc === null) {
    body = (
      <Alert color="blue" title="This line has no model yet" data-testid="no-model">
        <Text size="sm">
          The line map, the state timeline, OEE and what-if simulations need the line's model: its machines with their operations and cycle
          times, the buffers between them with their capacities, the products' routings, inspections, shifts and failures (the format of{" "}
          <code>linewatch twin validate</code>; JSON).
        </Text>
        <Text size="sm" mt="xs">
          {engineer ? (
            <>
              Upload or paste it on the <Anchor href={`#/line/${encodeURIComponent(line)}/model`} c="blue.9" fw={600}>Model</Anchor> tab.
            </>
          ) : (
            "An engineer uploads it on the Model tab."
          )}
        </Text>
      </Alert>
    );
  } else if (view === "map") body = <MapView line={line} model={doc.model} />;
  else if (view === "timeline") body = <TimelineView line={line} model={doc.model} machine={query.get("machine")} />;
  else if (view === "oee") body = <OeeView line={line} model={doc.model} />;
  else if (view === "whatif") body = <WhatIfView line={line} doc={doc} sim={query.get("sim") ? Number(query.get("sim")) : null} />;

  return (
    <Stack>
      <Group justify="space-between" align="flex-end">
        <Title order={2}>Line{line ? `: ${line}` : ""}</Title>
        {lines && lines.length > 0 && (
          <Select
            label="Line"
            data={lines.map((l) => l.name)}
            value={line}
            onChange={(v) => go(v)}
            allowDeselect={false}
            w={220}
            data-testid="line-select"
            comboboxProps={{ withinPortal: true }}
          />
        )}
      </Group>
      {line && (
        <nav aria-label="Line views">
          <Group gap="xs">
            {VIEWS.map((v) => (
              <Button
                key={v.path}
                component="a"
                href={`#/line/${encodeURIComponent(line)}/${v.path}`}
                variant={v.path === view ? "filled" : "default"}
                size="sm"
                aria-current={v.path === view ? "page" : undefined}
                data-testid={`line-view-${v.path}`}
              >
                {v.label}
              </Button>
            ))}
          </Group>
        </nav>
      )}
      {body}
    </Stack>
  );
}
