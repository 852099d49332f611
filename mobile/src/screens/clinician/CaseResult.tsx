import { useFocusEffect, useLocalSearchParams } from 'expo-router';
import { useCallback, useEffect, useState } from 'react';
import { View } from 'react-native';

import { type Case, getCase } from '../../api/cases';
import { describeError } from '../../api/errors';
import { AiResult, AnswerCard, CaseImage, ContextCard, Heatmap, QualityCard, TriageCard } from '../../components/CaseParts';
import { LesionChangeCard } from '../../components/LesionParts';
import { Banner, Card, Screen } from '../../ui';

const ANALYSIS_POLL_MS = 2_000;
const ANSWER_POLL_MS = 15_000;

/** The result of one case: AI probabilities with the disclaimer, triage, the dermatologist's answer, and
 * each photo with its heatmap (where the model looked, not a diagnosis) behind a toggle. */
export default function CaseResult() {
  const { id } = useLocalSearchParams<{ id: string }>();
  const [kase, setKase] = useState<Case | null>(null);
  const [error, setError] = useState<string | null>(null);

  const load = useCallback(async () => {
    try {
      setKase((await getCase(id)).case);
      setError(null);
    } catch (e) {
      setError(describeError(e));
    }
  }, [id]);

  useFocusEffect(
    useCallback(() => {
      load();
    }, [load]),
  );

  const analysing = kase && (kase.analysis.status === 'pending' || kase.analysis.status === 'running');
  const waiting = kase?.state === 'awaiting_specialist';
  useEffect(() => {
    if (!analysing && !waiting) return;
    const timer = setInterval(load, analysing ? ANALYSIS_POLL_MS : ANSWER_POLL_MS);
    return () => clearInterval(timer);
  }, [analysing, waiting, load]);

  return (
    <Screen title="Case result" loading={!kase && !error} onRefresh={load} testID="case-result-screen">
      {error ? <Banner tone="danger" message={error} /> : null}
      {kase ? (
        <>
          <AiResult kase={kase} />
          <TriageCard kase={kase} />
          <LesionChangeCard kase={kase} />
          <AnswerCard kase={kase} />
          <Card title="Photos">
            {kase.images.map((img) => (
              <View key={img.id}>
                <CaseImage caseId={kase.id} imageId={img.id} />
                <Heatmap kase={kase} imageId={img.id} />
              </View>
            ))}
          </Card>
          <QualityCard kase={kase} />
          <ContextCard kase={kase} />
        </>
      ) : null}
    </Screen>
  );
}
