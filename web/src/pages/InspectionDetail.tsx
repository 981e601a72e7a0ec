import { Alert, Anchor, Center, Loader, Stack } from "@mantine/core";
import { useEffect, useState } from "react";
import { api, call, type Inspection } from "../api/client";
import { InspectionView } from "../components/InspectionView";
import { DuplicatesCard, SimilarStrip } from "../components/SimilarStrip";

export default function InspectionPage({ id }: { id: number }) {
  const [x, setX] = useState<Inspection | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setX(null);
    setError(null);
    if (!Number.isInteger(id) || id < 1) {
      setError(`"${id}" is not an inspection number.`);
      return;
    }
    call(api.GET("/api/v1/inspections/{inspection_id}", { params: { path: { inspection_id: id } } })).then(setX, (e) =>
      setError((e as Error).message),
    );
  }, [id]);
  return (
    <Stack>
      <Anchor href="#/history" size="sm" onClick={(e) => {
        if (history.length > 1) {
          e.preventDefault();
          history.back();
        }
      }}>
        ← Back
      </Anchor>
      {error && <Alert color="red" title="Cannot show this inspection">{error}</Alert>}
      {!x && !error && (
        <Center p="xl">
          <Loader aria-label="Loading inspection" />
        </Center>
      )}
      {x && (
        <InspectionView
          x={x}
          onReviewed={setX}
          below={
            <>
              <SimilarStrip key={x.id} x={x} />
              <DuplicatesCard x={x} />
            </>
          }
        />
      )}
    </Stack>
  );
}
