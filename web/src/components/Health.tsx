import { Badge, Group, Progress, Text } from "@mantine/core";
import { HEALTH_COLOR, HEALTH_LABEL, fmtHealth, healthLevel } from "../lib/machines";

/** A machine's health as a word and a colour (never colour alone), with the figure; an open alert wins. */
export function HealthBadge({ health, openAlerts = 0, testid }: { health: number | null | undefined; openAlerts?: number; testid?: string }) {
  const level = healthLevel(health, openAlerts);
  return (
    <Badge color={HEALTH_COLOR[level]} variant="filled" data-testid={testid} data-level={level} style={{ overflow: "visible" }}>
      {HEALTH_LABEL[level]}
      {health != null ? ` · ${fmtHealth(health)}` : ""}
    </Badge>
  );
}

/** Health as a bar, 0 to 100 %. */
export function HealthBar({ health, openAlerts = 0, label }: { health: number | null | undefined; openAlerts?: number; label: string }) {
  const level = healthLevel(health, openAlerts);
  return (
    <Group gap={6} wrap="nowrap">
      <Progress
        value={health == null ? 0 : health * 100}
        color={HEALTH_COLOR[level]}
        size="md"
        style={{ flex: 1 }}
        aria-label={`${label}: ${health == null ? "unknown, no active model" : fmtHealth(health)}`}
      />
      <Text size="xs" c="gray.7" w={40} ta="right">
        {fmtHealth(health)}
      </Text>
    </Group>
  );
}
