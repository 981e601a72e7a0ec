import { Alert, Button, Card, Center, Grid, Group, Loader, Select, Stack, Table, Text, Title } from "@mantine/core";
import { useCallback, useEffect, useMemo, useState } from "react";
import { fmtDateTime, fmtPct } from "../../lib/format";
import { type LineModel, type OeeFigures, type OeeReport, fmtDuration, lossWaterfall, shiftFigures, twin } from "../../lib/twin";
import { LossWaterfall } from "./Bars";
import { type Range, RangePicker, presetRange } from "./RangePicker";

function Kpi({ label, value, testid }: { label: string; value: string; testid: string }) {
  return (
    <div>
      <Text size="xs" c="gray.7">
        {label}
      </Text>
      <Text fw={700} size="xl" data-testid={testid}>
        {value}
      </Text>
    </div>
  );
}

function OeeRow({ name, f, extra }: { name: string; f: OeeFigures; extra?: React.ReactNode }) {
  return (
    <Table.Tr data-testid="oee-row" data-name={name}>
      <Table.Td>{name}</Table.Td>
      {extra}
      <Table.Td ta="right">{fmtPct(f.availability)}</Table.Td>
      <Table.Td ta="right">{fmtPct(f.performance)}</Table.Td>
      <Table.Td ta="right">{fmtPct(f.quality)}</Table.Td>
      <Table.Td ta="right" fw={700}>
        {fmtPct(f.oee)}
      </Table.Td>
    </Table.Tr>
  );
}

/** OEE (ISO 22400-2) of the line, its machines and shifts over a range: availability × performance × quality, and
 * where the time went (the loss waterfall, with its table). */
export function OeeView({ line, model }: { line: string; model: LineModel }) {
  const [range, setRange] = useState<Range>(() => presetRange("shift", model));
  const [report, setReport] = useState<OeeReport | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [subject, setSubject] = useState("line");

  const load = useCallback(async () => {
    setReport(null);
    setError(null);
    try {
      setReport(await twin.oee(line, new Date(range.from).toISOString(), new Date(range.to).toISOString()));
    } catch (e) {
      setError((e as Error).message);
    }
  }, [line, range]);
  useEffect(() => {
    load();
  }, [load]);

  const options = useMemo(() => {
    if (!report) return [];
    return [
      { value: "line", label: `the line (${line})` },
      ...report.machines.map((m) => ({ value: `m:${m.machine ?? m.name}`, label: `machine ${m.machine ?? m.name}` })),
      ...report.shifts.map((s, i) => ({ value: `s:${i}`, label: `shift ${s.shift} from ${fmtDateTime(s.start ?? s.from ?? "")}` })),
    ];
  }, [report, line]);
  const figures: OeeFigures | null = useMemo(() => {
    if (!report) return null;
    if (subject.startsWith("m:")) return report.machines.find((m) => (m.machine ?? m.name) === subject.slice(2)) ?? report.line;
    if (subject.startsWith("s:")) {
      const s = report.shifts[Number(subject.slice(2))];
      return s ? shiftFigures(s) : report.line;
    }
    return report.line;
  }, [report, subject]);
  const bars = useMemo(() => (figures ? lossWaterfall(figures) : []), [figures]);
  const subjectLabel = options.find((o) => o.value === subject)?.label ?? "the line";
  const empty = report && report.line.availability == null && !(report.line.planned_busy_s && report.line.planned_busy_s > 0);

  return (
    <Stack data-testid="oee-view">
      <RangePicker range={range} onChange={setRange} model={model} presets={["shift", "24h", "7d"]} />
      <Text size="sm" data-testid="oee-range">
        {fmtDateTime(new Date(range.from).toISOString())} to {fmtDateTime(new Date(range.to).toISOString())} ({range.label})
      </Text>
      {error && (
        <Alert color="red" title="OEE could not be computed">
          <Text size="sm" mb="xs">
            {error}
          </Text>
          <Button size="xs" onClick={load}>
            Try again
          </Button>
        </Alert>
      )}
      {!report && !error && (
        <Center p="xl">
          <Loader aria-label="Computing OEE" />
        </Center>
      )}
      {report && empty && (
        <Alert color="blue" title="No production in this range" data-testid="oee-empty">
          No machine reported a state in planned time in this range{model.shifts?.length ? " (planned time is within the line's shifts)" : ""}. Choose
          another range, or check that the line's machines send their state events.
        </Alert>
      )}
      {report && !empty && (
        <>
          <Card withBorder data-testid="oee-line">
            <Group gap="xl" align="flex-end">
              <Kpi label="OEE of the line" value={fmtPct(report.line.oee)} testid="oee-line-oee" />
              <Text size="xl" aria-hidden="true">
                =
              </Text>
              <Kpi label="Availability" value={fmtPct(report.line.availability)} testid="oee-line-a" />
              <Text size="xl" aria-hidden="true">
                ×
              </Text>
              <Kpi label="Performance" value={fmtPct(report.line.performance)} testid="oee-line-p" />
              <Text size="xl" aria-hidden="true">
                ×
              </Text>
              <Kpi label="Quality (rolled throughput yield)" value={fmtPct(report.line.quality)} testid="oee-line-q" />
              {report.line.output_oee != null && <Kpi label="Output OEE (good parts out vs nameplate)" value={fmtPct(report.line.output_oee)} testid="oee-line-output" />}
            </Group>
            <Text size="sm" c="dimmed" mt="xs">
              {report.line.good != null ? `${Math.round(report.line.good)} good, ${Math.round(report.line.scrap ?? 0)} scrapped, ${Math.round(report.line.rework ?? 0)} reworked` : ""}
              {report.line.planned_busy_s != null ? ` · planned busy time ${fmtDuration(report.line.planned_busy_s)}` : ""}
            </Text>
          </Card>
          <Grid>
            <Grid.Col span={{ base: 12, lg: 7 }}>
              <Card withBorder>
                <Group justify="space-between" mb="xs">
                  <Title order={3} size="h5">
                    Where the time went
                  </Title>
                  <Select aria-label="Losses of" data={options} value={subject} onChange={(v) => setSubject(v ?? "line")} allowDeselect={false} w={260} data-testid="oee-subject" />
                </Group>
                <LossWaterfall bars={bars} label={`Loss waterfall of ${subjectLabel}: ${bars.map((b) => `${b.label} ${fmtDuration(b.seconds)}`).join(", ")}`} />
                <Table mt="sm" data-testid="loss-table" striped>
                  <Table.Thead>
                    <Table.Tr>
                      <Table.Th>Time</Table.Th>
                      <Table.Th ta="right">Duration</Table.Th>
                      <Table.Th ta="right">Share of planned busy time</Table.Th>
                    </Table.Tr>
                  </Table.Thead>
                  <Table.Tbody>
                    {bars.map((b) => (
                      <Table.Tr key={b.label}>
                        <Table.Td>{b.label}</Table.Td>
                        <Table.Td ta="right">{fmtDuration(b.seconds)}</Table.Td>
                        <Table.Td ta="right">{bars[0].seconds > 0 ? `${((b.seconds / bars[0].seconds) * 100).toFixed(1)} %` : "–"}</Table.Td>
                      </Table.Tr>
                    ))}
                  </Table.Tbody>
                </Table>
                {(figures?.losses?.planned_downtime_s ?? 0) > 0 && (
                  <Text size="xs" c="dimmed" mt={4}>
                    Planned downtime (maintenance) of {fmtDuration(figures!.losses!.planned_downtime_s!)} is outside planned busy time.
                  </Text>
                )}
              </Card>
            </Grid.Col>
            <Grid.Col span={{ base: 12, lg: 5 }}>
              <Stack>
                <Card withBorder>
                  <Title order={3} size="h5" mb="xs">
                    Machines
                  </Title>
                  <Table data-testid="oee-machines" striped>
                    <Table.Thead>
                      <Table.Tr>
                        <Table.Th>Machine</Table.Th>
                        <Table.Th ta="right">A</Table.Th>
                        <Table.Th ta="right">P</Table.Th>
                        <Table.Th ta="right">Q</Table.Th>
                        <Table.Th ta="right">OEE</Table.Th>
                      </Table.Tr>
                    </Table.Thead>
                    <Table.Tbody>
                      {report.machines.map((m) => (
                        <OeeRow key={m.machine ?? m.name} name={m.machine ?? m.name ?? "?"} f={m} />
                      ))}
                    </Table.Tbody>
                  </Table>
                </Card>
                <Card withBorder>
                  <Title order={3} size="h5" mb="xs">
                    Shifts
                  </Title>
                  {report.shifts.length === 0 ? (
                    <Text size="sm" c="dimmed" data-testid="oee-no-shifts">
                      {model.shifts?.length ? "No shift in this range." : "The line model has no shift calendar: all time is planned."}
                    </Text>
                  ) : (
                    <Table data-testid="oee-shifts" striped>
                      <Table.Thead>
                        <Table.Tr>
                          <Table.Th>Shift</Table.Th>
                          <Table.Th>Start</Table.Th>
                          <Table.Th ta="right">A</Table.Th>
                          <Table.Th ta="right">P</Table.Th>
                          <Table.Th ta="right">Q</Table.Th>
                          <Table.Th ta="right">OEE</Table.Th>
                        </Table.Tr>
                      </Table.Thead>
                      <Table.Tbody>
                        {report.shifts.map((s, i) => (
                          <OeeRow key={i} name={s.shift} f={shiftFigures(s)} extra={<Table.Td>{fmtDateTime(s.start ?? s.from ?? "").slice(0, 16)}</Table.Td>} />
                        ))}
                      </Table.Tbody>
                    </Table>
                  )}
                </Card>
              </Stack>
            </Grid.Col>
          </Grid>
        </>
      )}
    </Stack>
  );
}
